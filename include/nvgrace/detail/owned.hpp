#pragma once
/// \file
/// Sole ownership of one heap object: what std::unique_ptr<T> gives, without
/// <memory>, whose cost (shared_ptr, atomics, allocators) every user of the
/// in-process device would otherwise pay.

#include <utility>

namespace nvgrace::detail {

template <class T>
class owned {
public:
  constexpr owned() noexcept = default;
  explicit owned(T* p) noexcept : p_(p) {}
  owned(owned&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  owned& operator=(owned&& other) noexcept {
    if (this != &other) {
      delete p_;
      p_ = std::exchange(other.p_, nullptr);
    }
    return *this;
  }
  owned(const owned&) = delete;
  owned& operator=(const owned&) = delete;
  ~owned() { delete p_; }

  [[nodiscard]] T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

private:
  T* p_ = nullptr;
};

}  // namespace nvgrace::detail
