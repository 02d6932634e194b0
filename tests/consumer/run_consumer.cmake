# Configures, builds and runs the consumer project against scoreflow's install tree
# (MODE=install) or its source tree (MODE=subdirectory). Invoked by CTest.
cmake_minimum_required(VERSION 3.20)
set(consumer_src ${SOURCE_DIR}/tests/consumer)
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message("${out}")
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -G ${GENERATOR} -DSCOREFLOW_BUILD_TESTS=OFF
      -DSCOREFLOW_BUILD_EXAMPLES=OFF -DSCOREFLOW_BUILD_BENCHMARKS=OFF -DSCOREFLOW_WITH_TORCH=${WITH_TORCH}
      -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
  set(mode_args -DSCOREFLOW_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
else()
  set(mode_args -DSCOREFLOW_CONSUMER_MODE=subdirectory -DSCOREFLOW_SOURCE_DIR=${SOURCE_DIR})
endif()
run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/consumer -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release
    -DCONSUMER_WITH_TORCH=${WITH_TORCH} ${mode_args})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer -j 2)
run(${WORK_DIR}/consumer/readme_example)
# The README says what the example prints; hold it to that.
file(READ ${SOURCE_DIR}/README.md readme)
string(REGEX MATCH "It prints[ \n]+`([^`]*)`" claimed "${readme}")
string(STRIP "${last_output}" printed)
if(NOT CMAKE_MATCH_1 STREQUAL printed)
  message(FATAL_ERROR "README says the example prints '${CMAKE_MATCH_1}', it printed '${printed}'")
endif()
if(WITH_TORCH)
  run(${WORK_DIR}/consumer/torch_consumer)
endif()
