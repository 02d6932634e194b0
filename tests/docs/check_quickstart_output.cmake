# The README's "Quickstart output" block is what examples/quickstart prints, to the last digit.
#   cmake -DQUICKSTART=<program> -DREADME=<README.md> -P check_quickstart_output.cmake
execute_process(COMMAND ${QUICKSTART} RESULT_VARIABLE _rc OUTPUT_VARIABLE _printed ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "quickstart exited with ${_rc}:\n${_printed}${_err}")
endif()
file(READ ${README} _readme)
string(FIND "${_readme}" "## Quickstart output" _at)
if(_at EQUAL -1)
  message(FATAL_ERROR "README has no '## Quickstart output' section")
endif()
string(SUBSTRING "${_readme}" ${_at} -1 _section)
string(REGEX MATCH "```\n([^`]*)```" _block "${_section}")
set(_documented "${CMAKE_MATCH_1}")
if(NOT _documented STREQUAL _printed)
  message(FATAL_ERROR "README's quickstart output differs from what the program prints.\n"
                      "README:\n${_documented}\nprinted:\n${_printed}")
endif()
message(STATUS "README's quickstart output matches the program")
