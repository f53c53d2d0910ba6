# Writes a man page for one tool from its own --help and --version output, in
# the manner of help2man but with no dependency beyond CMake. Run as
#
#   cmake -DTOOL=<executable> -DNAME=<name> -DSUMMARY=<one line> -DOUTPUT=<file.1>
#         [-DSEE_ALSO=<a;b;c>] [-DDOCS=<page>] -P NvgraceManPage.cmake
#
# The --help text must follow the tools' layout (tools/common/cli.hpp):
#   - "Usage: NAME ..." first, continued on lines indented to line up with it;
#   - paragraphs of text, separated by blank lines;
#   - sections: a line with no indent that ends in ':' ("Options:", "Exit status:");
#   - items: a line indented by two spaces whose tag and text are separated by at
#     least two spaces ("  --size SIZE   GPU memory ..."), continued on lines
#     indented further.
# "Options:" becomes OPTIONS, "Exit status:" EXIT STATUS; other sections keep
# their title. Text before the first section is the DESCRIPTION.
cmake_minimum_required(VERSION 3.22)

foreach(var TOOL NAME SUMMARY OUTPUT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "NvgraceManPage.cmake: ${var} is not set")
  endif()
endforeach()

execute_process(COMMAND ${TOOL} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TOOL} --help failed (${rc})")
endif()
execute_process(COMMAND ${TOOL} --version OUTPUT_VARIABLE version_line RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR NOT version_line MATCHES "^${NAME} ([0-9]+\\.[0-9]+\\.[0-9]+)$")
  message(FATAL_ERROR "${TOOL} --version gave '${version_line}' (${rc}), expected '${NAME} X.Y.Z'")
endif()
set(version ${CMAKE_MATCH_1})

# Roff-escape one line of text: backslashes, hyphens (so options copy and paste
# as ASCII), and a leading '.' or "'" that roff would take for a request.
function(roff_escape out text)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  if(text MATCHES "^[.']")
    set(text "\\&${text}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Split into lines. ';' and the list-grouping brackets are masked first so that
# CMake's list handling keeps each line whole.
string(REPLACE ";" "<SEMI>" help "${help}")
string(REPLACE "[" "<LB>" help "${help}")
string(REPLACE "]" "<RB>" help "${help}")
string(REGEX REPLACE "\n$" "" help "${help}")
string(REPLACE "\n" ";" lines "${help}")

string(TOUPPER "${NAME}" title)
set(page ".\\\" Generated from '${NAME} --help' by cmake/NvgraceManPage.cmake; do not edit.\n")
string(APPEND page ".TH ${title} 1 \"\" \"nvgrace ${version}\" \"User Commands\"\n")
roff_escape(summary "${SUMMARY}")
string(APPEND page ".SH NAME\n${NAME} \\- ${summary}\n")

set(state usage)        # usage, text, item
set(section "")         # the current .SH, empty until DESCRIPTION starts
set(paragraph_open OFF) # inside running text of a paragraph
foreach(raw IN LISTS lines)
  string(REPLACE "<SEMI>" ";" line "${raw}")
  string(REPLACE "<LB>" "[" line "${line}")
  string(REPLACE "<RB>" "]" line "${line}")
  if(state STREQUAL "usage")
    set(usage_line OFF)
    if(line MATCHES "^Usage: ${NAME} ?(.*)$")
      set(usage_line ON)
      set(rest "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^       ${NAME} ?(.*)$")
      set(usage_line ON)
      set(rest "${CMAKE_MATCH_1}")
    endif()
    if(usage_line)
      if(NOT page MATCHES "\\.SH SYNOPSIS\n")
        string(APPEND page ".SH SYNOPSIS\n")
      else()
        string(APPEND page ".br\n")
      endif()
      roff_escape(rest "${rest}")
      string(APPEND page ".B ${NAME}\n${rest}\n")
      continue()
    endif()
    set(state text)
  endif()
  if(line STREQUAL "")
    set(paragraph_open OFF)
    continue()
  endif()
  if(line MATCHES "^([A-Za-z][^:]*):$")
    # A section.
    string(TOUPPER "${CMAKE_MATCH_1}" heading)
    string(APPEND page ".SH \"${heading}\"\n")
    set(section "${heading}")
    set(paragraph_open OFF)
    set(state text)
    continue()
  endif()
  if(section STREQUAL "")
    string(APPEND page ".SH DESCRIPTION\n")
    set(section DESCRIPTION)
  endif()
  if(line MATCHES "^  (([^ ]| [^ ])+)  +([^ ].*)$")
    # An item: a tag without double spaces, at least two spaces, then text.
    roff_escape(tag "${CMAKE_MATCH_1}")
    roff_escape(text "${CMAKE_MATCH_3}")
    string(APPEND page ".TP\n.B ${tag}\n${text}\n")
    set(state item)
    set(paragraph_open ON)
    continue()
  endif()
  if(state STREQUAL "item" AND line MATCHES "^    +([^ ].*)$")
    roff_escape(text "${CMAKE_MATCH_1}")
    string(APPEND page "${text}\n")
    continue()
  endif()
  string(REGEX REPLACE "^ +" "" text "${line}")
  roff_escape(text "${text}")
  if(NOT paragraph_open OR state STREQUAL "item")
    string(APPEND page ".PP\n")
    set(paragraph_open ON)
  endif()
  string(APPEND page "${text}\n")
  set(state text)
endforeach()

if(SEE_ALSO OR DOCS)
  string(APPEND page ".SH \"SEE ALSO\"\n")
  set(refs "")
  foreach(other IN LISTS SEE_ALSO)
    list(APPEND refs ".BR ${other} (1)")
  endforeach()
  list(JOIN refs ",\n" refs)
  if(refs)
    string(APPEND page "${refs}\n")
  endif()
  if(DOCS)
    roff_escape(docs "${DOCS}")
    string(APPEND page ".PP\nThe full documentation is ${docs} in the nvgrace source tree.\n")
  endif()
endif()

file(WRITE ${OUTPUT}.tmp "${page}")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUTPUT}.tmp)
