#pragma once
/// \file
/// A plain mutex over pthread_mutex_t and its scope guard. <mutex> is avoided
/// because it brings <chrono> and <system_error> into every user of the
/// in-process device; the device only needs lock and unlock.

#include <pthread.h>

namespace nvgrace::posix {

/// A non-recursive mutex (PTHREAD_MUTEX_DEFAULT). Not copyable, not movable.
class mutex {
public:
  mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  ~mutex() { ::pthread_mutex_destroy(&m_); }

  // A default mutex cannot fail to lock or unlock unless it is misused (not
  // locked by the caller), which the guard rules out.
  void lock() noexcept { ::pthread_mutex_lock(&m_); }
  void unlock() noexcept { ::pthread_mutex_unlock(&m_); }

private:
  pthread_mutex_t m_ = PTHREAD_MUTEX_INITIALIZER;
};

/// Holds `m` locked for its scope.
class lock_guard {
public:
  explicit lock_guard(mutex& m) noexcept : m_(m) { m_.lock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;
  ~lock_guard() { m_.unlock(); }

private:
  mutex& m_;
};

}  // namespace nvgrace::posix
