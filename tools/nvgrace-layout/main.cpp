// nvgrace-layout: show how nvgrace-gpu carves Grace GPU memory into emulated
// BARs (see docs/layout-explorer.md). The logic lives in layout_tool.hpp.
#include "layout_tool.hpp"

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::string_view> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::string out, err;
  const int status = nvgrace::layout_tool::run(args, out, err);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fwrite(err.data(), 1, err.size(), stderr);
  return status;
}
