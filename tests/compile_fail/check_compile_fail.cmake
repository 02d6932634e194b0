# One compile-failure test: compiles SOURCE with -DSCOREFLOW_CASE_<CASE> (syntax only)
# and requires it to fail with a diagnostic matching EXPECT. CASE = CONTROL must compile cleanly.
#   cmake -DCXX=<compiler> -DSOURCE=<file> -DINCLUDES=<dir;dir> -DCASE=<name> -DEXPECT=<regex> -P this
string(REPLACE "|" ";" INCLUDES "${INCLUDES}")
set(_includes)
foreach(_dir IN LISTS INCLUDES)
  list(APPEND _includes -I${_dir})
endforeach()
execute_process(
  COMMAND ${CXX} -std=c++20 -fsyntax-only ${_includes} -DSCOREFLOW_CASE_${CASE} ${SOURCE}
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(CASE STREQUAL "CONTROL")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "the control case (every policy complete) does not compile:\n${_out}")
  endif()
  return()
endif()
if(_rc EQUAL 0)
  message(FATAL_ERROR "case ${CASE} compiled, but a policy member is missing: the concept does not check it")
endif()
# Exactly one policy check fails, and it is the one naming the missing member.
string(REGEX MATCHALL "static assertion failed" _failed "${_out}")
list(LENGTH _failed _count)
if(NOT _count EQUAL 1 OR NOT _out MATCHES "static assertion failed: ${EXPECT}")
  message(FATAL_ERROR "case ${CASE}: expected one failed policy check, 'static assertion failed: ${EXPECT}'; "
                      "got ${_count}:\n${_out}")
endif()
message(STATUS "case ${CASE}: rejected with a diagnostic matching '${EXPECT}'")
