// result::error_code() without the bridge header is a compile error that names
// the header; with it (NVGRACE_WITH_BRIDGE, the control) the same code builds.
#include <nvgrace/core/result.hpp>
#ifdef NVGRACE_WITH_BRIDGE
#include <nvgrace/core/error_code.hpp>
#endif

int main() {
  const nvgrace::status s(nvgrace::errc::io_error);
  const nvgrace::result<int> r(nvgrace::errc::bad_address);
  return s.error_code().value() + r.error_code().value();
}
