// nvgrace-layout: show how nvgrace-gpu carves Grace GPU memory into emulated
// BARs (see docs/layout-explorer.md). The logic lives in layout_tool.hpp.
#include "layout_tool.hpp"

int main(int argc, char** argv) {
  const auto args = nvgrace::tools::cli::arguments(argc, argv);
  return nvgrace::tools::cli::finish(nvgrace::layout_tool::tool, nvgrace::layout_tool::run(args));
}
