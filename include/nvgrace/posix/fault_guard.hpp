#pragma once
/// \file
/// Surviving a file mapping whose file shrank. Touching a page of a
/// MAP_SHARED mapping that lies wholly past the end of its file raises SIGBUS,
/// and whoever holds a writable fd of a regular file can truncate it (a memfd
/// can be sealed against that, a regular file cannot). `guard_faults(f)` runs
/// `f` so that such a fault ends `f` with EIO instead of the process.
///
/// How: a process-wide SIGBUS handler (installed once, on first use or by
/// `install_fault_handler()`) jumps back to the innermost active guard of the
/// faulting thread with siglongjmp. A guard costs a sigsetjmp without the
/// signal mask (no system call) and two thread-local stores, so it can wrap
/// every access a server makes on behalf of a peer. Rules for `f`:
/// - everything `f` may leave half done on a fault must be harmless to
///   abandon: no lock held, no allocation, no object with a non-trivial
///   destructor between the guard and the faulting access (the copy path of
///   nvgrace's devices meets this: it takes no lock and allocates nothing);
/// - the bytes `f` had already stored before the fault stay stored.
///
/// A SIGBUS outside every guard, or one sent by kill(2) rather than raised by
/// a fault, goes to the handler that was installed before (or takes the
/// default action: the process dies as it would have without nvgrace). A
/// program that installs its own SIGBUS handler after nvgrace's replaces it;
/// guards then no longer catch anything.

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>

#include <optional>
#include <type_traits>

namespace nvgrace::posix {

namespace detail {

/// Where a guarded call resumes after a fault.
struct fault_landing {
  sigjmp_buf jump;
};

/// The innermost guard of this thread (nullptr: none). Read by the signal
/// handler, so every access is atomic and fenced against the guarded call
/// (see `set_landing`).
inline thread_local fault_landing* active_fault_landing = nullptr;

/// Publish the innermost guard to this thread's signal handler. A plain
/// store would be dead to the compiler (nothing in the abstract machine reads
/// it before the next store), and optimised builds did drop it: the fault then
/// killed the process. The relaxed atomic store is a plain move; the signal
/// fences keep the guarded call's accesses between the two stores.
inline void set_landing(fault_landing* landing) noexcept {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  __atomic_store_n(&active_fault_landing, landing, __ATOMIC_RELAXED);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
/// What SIGBUS did before nvgrace's handler.
inline struct sigaction previous_sigbus_action {};

inline void on_sigbus(int signo, siginfo_t* info, void* context) noexcept {
  fault_landing* const landing = __atomic_load_n(&active_fault_landing, __ATOMIC_RELAXED);
  // si_code > 0: raised by the kernel for a fault (BUS_ADRERR past a file's end), not sent.
  if (landing != nullptr && info != nullptr && info->si_code > 0) {
    // SA_NODEFER keeps SIGBUS unblocked; an emulation of the handler call that
    // blocked it anyway (ThreadSanitizer's) would leave it blocked past the jump,
    // and the next fault would kill. One call, on the fault path only.
    sigset_t bus;
    sigemptyset(&bus);
    sigaddset(&bus, SIGBUS);
    ::pthread_sigmask(SIG_UNBLOCK, &bus, nullptr);
    siglongjmp(landing->jump, 1);
  }
  const struct sigaction& previous = previous_sigbus_action;
  if ((previous.sa_flags & SA_SIGINFO) != 0) {
    if (previous.sa_sigaction != nullptr) {
      previous.sa_sigaction(signo, info, context);
      return;
    }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(signo);
    return;
  }
  // The default action, as if we had never been here: a fault re-executes the
  // access and dies of it; a sent signal is raised again.
  ::signal(SIGBUS, SIG_DFL);
  if (info == nullptr || info->si_code <= 0) ::raise(SIGBUS);
}

[[nodiscard]] inline bool install_sigbus_handler() noexcept {
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  // SA_NODEFER: SIGBUS stays unblocked in the handler, so jumping out of it
  // with a sigsetjmp that saved no mask leaves the mask as it was.
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  return ::sigaction(SIGBUS, &action, &previous_sigbus_action) == 0;
}

}  // namespace detail

/// Install the SIGBUS handler the guards need (once per process; thread-safe).
/// False when sigaction(2) refused, in which case a fault kills the process.
inline bool install_fault_handler() noexcept {
  static const bool installed = detail::install_sigbus_handler();
  return installed;
}

/// Run `f()`: its result, or nullopt when it faulted on a mapping past the
/// end of its file (SIGBUS). `f` returns a trivially destructible value.
/// Guards nest.
template <class F>
[[nodiscard]] auto guard_faults(F&& f) noexcept -> std::optional<decltype(f())> {
  static_assert(std::is_trivially_destructible_v<decltype(f())>);
  static_cast<void>(install_fault_handler());
  detail::fault_landing landing;
  detail::fault_landing* const outer = __atomic_load_n(&detail::active_fault_landing, __ATOMIC_RELAXED);
  if (sigsetjmp(landing.jump, 0) != 0) {
    detail::set_landing(outer);
    return std::nullopt;
  }
  detail::set_landing(&landing);
  auto done = f();
  detail::set_landing(outer);
  return done;
}

}  // namespace nvgrace::posix
