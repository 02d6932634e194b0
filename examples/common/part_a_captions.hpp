#pragma once
// The text of Part A's page: section headings, figure captions and notes, in the seed's order
// (Part A §0 – §1.9, then our evaluation). Blanks (${name}) are filled by part_a.hpp with the
// configuration and the measured numbers; ${model} is the DDPM's name, ${seed} the run's seed.
#include <string_view>

#include "common/captions.hpp"

namespace examples::part_a_text {

inline constexpr SectionText sections[] = {
    {"A 0", "Setup: our pretrained model, and sampling from it"},
    {"A 1.1", "Implementing the forward process"},
    {"A 1.2", "Classical denoising"},
    {"A 1.3", "One-step denoising"},
    {"A 1.4", "Iterative denoising"},
    {"A 1.5", "Diffusion model sampling"},
    {"A 1.6", "Classifier-free guidance"},
    {"A 1.7", "Image-to-image translation (SDEdit)"},
    {"A 1.7.1", "Editing hand-drawn and web images"},
    {"A 1.7.2", "Inpainting"},
    {"A 1.7.3", "Class-conditional image-to-image translation"},
    {"A 1.8", "Visual anagrams"},
    {"A 1.9", "Hybrid images"},
    {"A 2", "Evaluation of our DDPM (not in the seed)"},
};

// ---- §0: the model that stands in for DeepFloyd IF, and sampling it ----
inline constexpr FigureText model_loss{
    "A 0", "Training loss of our 'pretrained' DDPM", "a0_ddpm_loss.png",
    "${model}: ${prediction} (DiffusionObjective), cosine schedule, T = 1000, input t/1000, class dropout p = ${p_uncond}, "
    "MNIST scaled to [−1, 1], batch ${batch}, Adam ${lr} with ${schedule}, ${epochs} epochs on ${images} images, "
    "seed ${seed}${recipe}"};
inline constexpr NoteText stand_in{
    "A 0", "Our stand-in for DeepFloyd IF",
    "The seed's Part A samples DeepFloyd IF with text prompts. Here every deliverable uses the DDPM above: a diffusion model "
    "on the same cosine ᾱ table (T = 1000) as IF, with images in [−1, 1] as IF's, read as a noise predictor ε̂(x_t, t, c) "
    "wherever the seed uses ε̂ (a v-predicting net is converted exactly: ε̂ = √(1 − ᾱ) x_t + √ᾱ v̂, and CFG in v equals CFG "
    "in ε because the conversion is affine with the same x_t). A prompt is a class one-hot (\"7\"); the all-zero condition "
    "(the model's class-dropout mode) is the unconditional prompt, i.e. the seed's \"a high quality photo\"; the seed's "
    "empty-prompt CFG branch is the same all-zero condition. PNGs show (x + 1)/2."};
inline constexpr FigureText prompts{
    "A 0", "Prompts \"3\", \"7\", \"8\" with 20 and 100 steps", "a0_prompts.png",
    "four samples per prompt (columns: 3 3 3 3 7 7 7 7 8 8 8 8); row 1: DiffusionGrid::spaced(20), row 2: spaced(100) "
    "(DDPM fixed-small variance, leading spacing, last step to t = −1); CFG γ = ${gamma}; ${model}; seed ${seed}"};

// ---- §1.1 – §1.4: one test digit, the seed's Campanile ----
inline constexpr std::string_view digit = "test digit #${index} (a 7)";
inline constexpr FigureText forward{
    "A 1.1", "Forward process", "a11_forward.png",
    "original ${digit}, then x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε at t = 250, 500, 750 (diffusion::forward, cosine ᾱ: ${alpha_bars}); "
    "one ε from torch::manual_seed(${seed})"};
inline constexpr FigureText blur{
    "A 1.2", "Gaussian-blur denoising", "a12_blur.png",
    "columns t = 250, 500, 750; rows: noisy, GaussianBlur(5, σ = 2) (the seed's), best blur of kernel ∈ {3, 5, 7, 9} × σ ∈ "
    "{0.5, 1, 2, 3} by MSE to the original (MSE in [0, 1] pixel units); ${digit}, seed ${seed}"};
inline constexpr FigureText one_step{
    "A 1.3", "One-step denoising", "a13_one_step.png",
    "rows t = 250, 500, 750; columns: original, noisy, x̂₀ = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t (diffusion::sample_from_noise) with "
    "the unconditional ε̂ of ${model}; ${digit}, seed ${seed}"};
inline constexpr FigureText iterative_frames{
    "A 1.4", "Iterative denoising: every 5th step", "a14_frames.png",
    "x_t at t = ${t} (grid index ${i_start} of strided(990, 30)), then every 5th DDPM step (RecordEvery{5}) down to t = 0; "
    "FromState start, unconditional, ${model}, seed ${seed}"};
inline constexpr FigureText iterative_compare{
    "A 1.4", "Iterative vs one-step vs Gaussian blur", "a14_compare.png",
    "original; iteratively denoised (${steps} steps); one-step estimate at t = ${t}; GaussianBlur(5, 2) of x_t. seed ${seed}"};

// ---- §1.5 – §1.6: sampling from pure noise ----
inline constexpr FigureText unconditional{
    "A 1.5", "Five unconditional samples", "a15_samples.png",
    "the unconditional prompt (all-zero class = \"a high quality photo\") from pure noise, strided(990, 30) DDPM (33 steps, "
    "no guidance), ${model}, seed ${seed}"};
inline constexpr FigureText guided{
    "A 1.6", "Five samples with CFG γ = ${gamma}", "a16_cfg_samples.png",
    "ε = ε_u + γ(ε_c − ε_u), one batched call per step. In the seed both prompts are \"a high quality photo\" vs \"\"; here "
    "the unconditional prompt IS the all-zero class, so CFG toward it would be a no-op: the conditional branch uses one "
    "random class per sample (torch::manual_seed(${seed}), classes ${classes}), the unconditional branch the all-zero "
    "class. strided(990, 30), ${model}, seed ${seed}"};

// ---- §1.7 – §1.7.3: editing; ${starts} are the SDEdit start indices, ${times} their t ----
inline constexpr FigureText sdedit{
    "A 1.7", "SDEdit of three test digits", "a17_sdedit.png",
    "rows: test digits #${a} (7), #${b} (2), #${c} (4); columns: original, then SDEdit<Tensor>{x, i_start} for i_start = "
    "${starts} (t = ${times}) on strided(990, 30), unconditional; ${model}, seed ${seed}"};
inline constexpr FigureText drawn_inputs{
    "A 1.7.1", "The inputs as drawn", "a171_inputs.png",
    "drawn by code with a round brush and a hand's wobble: a \"7\", a \"0\", a wobbly \"4\" (160×160 RGB PNGs, dark on "
    "white) and a \"web-like\" 240×180 JPEG (quality 80) with a coloured gradient and a thick dark-red \"3\"; files in "
    "inputs/ (shown here resampled to 120×120)"};
inline constexpr FigureText drawn_sdedit{
    "A 1.7.1", "Projecting the drawings onto the digit manifold", "a171_sdedit.png",
    "first column: each file loaded back with load_image(channels = 1, 28×28: stb's Mitchell filter), inverted (mean > "
    "0.5: light background) and stretched to [0, 1]; then SDEdit at i_start = ${starts} (t = ${times}), unconditional, "
    "strided(990, 30); ${model}, seed ${seed}"};
inline constexpr FigureText inpainting{
    "A 1.7.2", "Inpainting two digits with two masks", "a172_inpaint.png",
    "columns: test #${a} (9) with a centre square, the same with the bottom half, test #${b} (5) with each mask; rows: "
    "original, mask m (white = generated), the kept part (gray = hole), result. Inpaint<Tensor>{orig, m} as the Sampler's "
    "constraint (x ← m x + (1 − m) forward(orig, t) after every step), unconditional, strided(990, 30) from pure noise; "
    "${model}, seed ${seed}"};
inline constexpr FigureText text_sdedit{
    "A 1.7.3", "SDEdit toward a prompt: 1 → \"7\", 0 → \"6\", 3 → \"8\"", "a173_text_sdedit.png",
    "rows: test #${one} (1) with prompt \"7\", #${zero} (0) with \"6\", #${three} (3) with \"8\"; columns: original, then "
    "SDEdit at i_start = ${starts} (t = ${times}) with CFG γ = ${gamma}, strided(990, 30); ${model}, seed ${seed}"};

// ---- §1.8 – §1.9: optical illusions ----
inline constexpr FigureText flip_anagram{
    "A 1.8", "Anagrams with the vertical flip: \"6\" / \"9\" and \"2\" / \"5\"", "a18_flip.png",
    "ε = ½(CFG(x, p₁) + flip(CFG(flip(x), p₂))): Anagram<Tensor> with View::identity and View::flip_vertical, CFG γ = "
    "${gamma}, strided(990, 30); row 1: the image (columns 1–4 prompt \"6\", 5–8 prompt \"2\"), row 2: the same flipped "
    "upside down (prompts \"9\", \"5\"); ${model}, seed ${seed}"};
inline constexpr FigureText rotation_anagram{
    "A 1.8", "Anagram with a 90° rotation: \"1\" / \"7\"", "a18_rotate.png",
    "Anagram<Tensor> with View::identity (prompt \"1\") and View::rotate90 (prompt \"7\", counter-clockwise as torch.rot90); "
    "row 1: the image, row 2: rotated 90°; CFG γ = ${gamma}, strided(990, 30); ${model}, seed ${seed}"};
inline constexpr FigureText hybrid{
    "A 1.9", "Hybrids: low \"0\" + high \"1\", low \"8\" + high \"3\"", "a19_hybrid.png",
    "ε = lowpass(CFG(x, p_low)) + highpass(CFG(x, p_high)): Factorized<Tensor>::hybrid(low, high, GaussianBlur(9, 2.0)), "
    "CFG γ = ${gamma}, strided(990, 30). Columns 1–4: low \"0\" / high \"1\", 5–8: low \"8\" / high \"3\". Rows: the image; "
    "its low-pass (blur 9, σ 2: what one sees from afar); its high-pass ×2; the image seen small (7×7 area-downsampled, "
    "shown enlarged). The seed's kernel 33 is for IF's 64×64 images: on a 28×28 digit its reflect padding (16) mirrors "
    "over half the image, so we keep σ = 2 and a 9-tap kernel (±2σ). ${model}, seed ${seed}"};

// ---- A 2 (not in the seed): the quality of our DDPM ----
inline constexpr NoteText evaluator{
    "A 2", "Evaluator",
    "CAS (classifier accuracy on generated samples against the class asked for) and Fréchet distance use an ensemble "
    "of ${members} small CNNs trained on ${training}; its accuracy on the held-out test split is ${accuracy}%. Fréchet "
    "distances use its ${feature_dims}-d penultimate features: comparable within this gallery, not with published FIDs."};
inline constexpr FigureText evaluation_guided{
    "A 2", "Class-conditional samples with CFG γ = ${gamma}", "a2_eval_cfg.png",
    "${samples} samples (${per_class} per digit; 4 of each shown, columns 0 … 9), ${grid} DDPM, exported as "
    "samples/ddpm_cfg-*-idx*-ubyte; ${model}, generator seeds ${generator_seed} + offset. Fréchet distance to held-out "
    "real test digits in the evaluator's features."};
inline constexpr FigureText evaluation_unconditional{
    "A 2", "Unconditional samples", "a2_eval_uncond.png",
    "${samples} samples (first 40 shown), all-zero class, no guidance, ${grid}, exported as samples/ddpm_uncond-*; "
    "generator seed ${generator_seed}"};
inline constexpr FigureText sweep_fd{
    "A 2", "Quality against model calls: every solver", "a2_sweep_fd.png",
    "Fréchet distance of ${samples} class-conditioned samples (CFG γ = ${gamma}) against model calls per sample, one line "
    "per solver on the ${grid} grid, the same initial noise for every point; the flat line is the converged "
    "ODE (${reference}); the point 'ddpm' is the seed's stochastic strided loop. ${model}. Each point's samples: "
    "samples/sweep-ddpm-<solver>-<calls>-*-ubyte."};
inline constexpr FigureText sweep_rmse{
    "A 2", "Distance to the converged solution against model calls", "a2_sweep_rmse.png",
    "RMS pixel distance ([0, 1] units) of each run's samples to the reference's samples from the same initial noise "
    "(${reference}): how far each solver's solution of the ODE is from the converged one. FD and CAS above cannot show "
    "this: with our lenient evaluator a blurry but plausible set scores as well as the reference."};
inline constexpr FigureText sweep_cas{
    "A 2", "CAS against model calls: every solver", "a2_sweep_cas.png",
    "The same runs as above scored by CAS; flat line: ${reference}."};

}  // namespace examples::part_a_text
