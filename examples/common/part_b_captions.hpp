#pragma once
// The text of Part B's page: section headings, figure captions and notes, in the seed's order
// (Part B §1.2 – §2.7). Blanks (${name}) are filled by part_b.hpp with the configuration and the
// measured numbers.
#include <string_view>

#include "common/captions.hpp"

namespace examples::part_b_text {

inline constexpr SectionText sections[] = {
    {"B 1.2", "Using the UNet to train a denoiser"},
    {"B 1.2.1", "Training (σ = 0.5)"},
    {"B 1.2.2", "Out-of-distribution testing"},
    {"B 1.2.3", "Denoising pure noise"},
    {"B 2.2", "Training the time-conditioned UNet"},
    {"B 2.3", "Sampling from the time-conditioned UNet"},
    {"B 2.5", "Training the class-conditioned UNet"},
    {"B 2.6", "Sampling with classifier-free guidance"},
    {"B 2.7", "Solvers and policies on the class-conditioned flow model"},
};

/// Fills ${training} in the loss captions below.
inline constexpr std::string_view training = "batch ${batch}, Adam ${lr}, ${epochs} epochs on ${images} images, seed ${seed}";
inline constexpr std::string_view scheduler = "exponential LR decay γ = 0.1^(1/epochs)";

// ---- §1.2 – §1.2.3: the one-step denoiser ----
inline constexpr FigureText noising{
    "B 1.2", "Noising process", "b12_noising.png",
    "z = x + σε for σ = 0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0 (columns), five test digits (rows); seed ${seed}"};

/// The two denoisers of §1.2.1 and §1.2.3: one trained on z = x + 0.5ε, one on pure noise.
struct DenoiserText {
  std::string_view run, name;  ///< cache and file name; the trainer's title
  FigureText loss, epoch;      ///< the loss curve; the test outputs after an epoch
};
inline constexpr std::string_view denoiser_loss = "UnconditionalUNet D = ${hidden}, ${training}";
inline constexpr DenoiserText one_step{
    "b121_denoiser", "one-step denoiser (σ = 0.5)",
    {"B 1.2.1", "Training loss", "${run}_loss.png", denoiser_loss},
    {"B 1.2.1", "Test digits: clean / noisy / denoised, after epoch ${epoch}", "${run}_epoch${epoch}.png", "rows: x, z = x + 0.5ε, D(z)"}};
inline constexpr DenoiserText pure_noise{
    "b123_pure_noise", "pure-noise denoiser",
    {"B 1.2.3", "Training loss (pure noise input)", "${run}_loss.png", denoiser_loss},
    {"B 1.2.3", "Outputs from pure noise after epoch ${epoch}", "${run}_epoch${epoch}.png", "D(ε) for eight draws ε ~ N(0, I)"}};

inline constexpr FigureText out_of_distribution{
    "B 1.2.2", "Denoising at σ it was not trained for", "b122_ood.png",
    "pairs of rows per σ ∈ {0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0}: z, then D(z); same eight test digits"};
inline constexpr FigureText mean_image{
    "B 1.2.3", "The training-set mean image beside outputs from pure noise", "b123_mean_image.png",
    "first image: the mean of all training digits; then D(ε) for seven ε"};
inline constexpr NoteText why_the_mean{
    "B 1.2.3", "What denoising pure noise produces, and why",
    "With z = ε independent of x, the L2-optimal D(z) is E[x | z] = E[x]: the average training digit, whatever the noise. "
    "Measured: the outputs are ${percent}% as far (MSE) from the mean image as real digits are, and vary across inputs by "
    "only ${spread} per pixel. They are a blurry superposition of all digits, not a digit: one-step denoising of pure noise "
    "cannot generate, which is why Part B §2 denoises iteratively."};

// ---- §2.2 – §2.3: the time-conditioned flow ----
inline constexpr FigureText time_loss{
    "B 2.2", "Training loss, time-conditioned UNet", "b22_time_flow_loss.png",
    "TimeConditionalUNet, D = ${hidden}, ${training}, ${scheduler}"};
inline constexpr FigureText time_epoch{
    "B 2.3", "Samples after epoch ${epoch}", "b23_time_epoch${epoch}.png",
    "40 samples, ${sampling} from t = 0 (noise) to 1, generator seed ${seed}"};
inline constexpr FigureText time_evaluation{
    "B 2.3", "Evaluation of the final time-conditioned model", "b23_time_epoch${epoch}.png",
    "${samples} samples exported as samples/flow_time-*-idx*-ubyte"};

// ---- §2.5 – §2.6: the class-conditioned flow, with and without the scheduler ----
inline constexpr std::string_view class_loss_caption = "ClassConditionalUNet D = ${hidden}, p_uncond = 0.1, ${training}, ${lr}";
inline constexpr FigureText class_loss{"B 2.5", "Training loss, ${title}", "${run}_loss.png", class_loss_caption};
inline constexpr FigureText comparison_loss{"B 2.6", "Training loss, ${title}", "${run}_loss.png", class_loss_caption};
inline constexpr FigureText class_epoch{
    "B 2.6", "${title}: 4 samples of each digit after epoch ${epoch}", "${run}_epoch${epoch}.png",
    "columns 0 … 9, CFG γ = ${gamma}, ${sampling}, generator seed ${seed}"};
inline constexpr FigureText class_evaluation{
    "B 2.6", "Evaluation of the final class-conditioned model (CFG γ = ${gamma})", "${run}_epoch${epoch}.png",
    "${samples} samples (${per_class} per digit) exported as samples/flow_class_cfg-*-idx*-ubyte"};
inline constexpr FigureText groupnorm_evaluation{
    "B 2.8", "The same model with GroupNorm instead of BatchNorm (CFG γ = ${gamma})", "${run}_epoch${epoch}.png",
    "Not the seed's architecture: every BatchNorm2d of the UNet replaced by GroupNorm(${groups}) (UNetOptions::norm), "
    "trained as the main model (${training}). BatchNorm's running statistics are one average over all noise levels "
    "and its batch statistics make each sample depend on the rest of the batch; with BatchNorm the EMA of the weights "
    "did not clean up the samples in our measurements, with GroupNorm it did (README, \"Training options\"). "
    "${samples} samples (${per_class} per digit) exported as samples/${export}-*-idx*-ubyte"};
inline constexpr NoteText without_scheduler{
    "B 2.6", "Can we get rid of the learning-rate scheduler?",
    "The scheduler lowers the learning rate tenfold over the run, so late updates are small enough to settle into a minimum. "
    "Without it, we compensate by training at a constant learning rate of ${lr} (between the scheduler's start and end "
    "values) for the same number of epochs. Measured, same seed, data, D = ${hidden} and ${epochs} epochs: ${results}"};
/// One model's line in ${results} above.
inline constexpr std::string_view comparison_result = "${title}: loss ${loss}, CAS ${cas}%, FD ${fd} (${samples} samples); ";

// ---- §2.7 (not in the seed): solvers and the core's policies on the class-conditioned flow ----
inline constexpr FigureText solver{
    "B 2.7", "${solver}, ${steps} steps", "b27_${solver}_${steps}.png",
    "${sampling}: ${calls} model calls per sample (a batched CFG call counts once), γ = ${gamma}"};
inline constexpr FigureText sweep_fd{
    "B 2.7", "Quality against model calls: every solver", "b27_sweep_fd.png",
    "Fréchet distance of ${samples} class-conditioned samples (${per_class} per digit, CFG γ = ${gamma}) against model calls per "
    "sample, one line per solver (${grid}), the same initial noise for every point; the flat line is the seed's sampler "
    "(${reference}). "
    "Each point's samples: samples/sweep-flow-<solver>-<calls>-*-ubyte."};
inline constexpr FigureText sweep_rmse{
    "B 2.7", "Distance to the converged solution against model calls", "b27_sweep_rmse.png",
    "RMS pixel distance ([0, 1] units) of each run's samples to the reference's samples from the same initial noise "
    "(${reference}): how far each solver's solution of the ODE is from the converged one. FD and CAS above cannot show "
    "this: on these small models coarse steps can read better than the converged solution."};
inline constexpr FigureText sweep_cas{
    "B 2.7", "CAS against model calls: every solver", "b27_sweep_cas.png",
    "The same runs as above scored by CAS (the evaluator's accuracy on the intended digit); flat line: ${reference}."};
inline constexpr FigureText policies{
    "B 2.7", "Anagram, hybrid and inpainting with the class-conditioned flow model", "b27_policies.png",
    "rows: anagram '6' upright / '9' rotated 180° (Anagram, View::rotate180), the same rotated; hybrid low-pass '0' + "
    "high-pass '1' (Factorized, blur 7, σ 2); kept left halves of test digits; inpainted right halves (Inpaint, class of "
    "the digit). CFG γ = ${gamma}, ${sampling}. The same policies as Part A, on a velocity model: they are model-agnostic."};

}  // namespace examples::part_b_text
