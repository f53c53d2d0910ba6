#pragma once
/// \file
/// The ACPI inputs of the driver (§2.1): the GPU memory's physical base and
/// size, and the rule that turns missing or empty memory into plain vfio-pci.

#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>

#include <cstdint>
#include <optional>

namespace nvgrace::grace {

inline constexpr text_view acpi_base_property = "nvidia,gpu-mem-base-pa";
inline constexpr text_view acpi_size_property = "nvidia,gpu-mem-size";

/// The two _DSD properties as firmware provides them; nullopt = absent.
struct acpi_properties {
  std::optional<std::uint64_t> gpu_mem_base_pa;
  std::optional<std::uint64_t> gpu_mem_size;
};

/// Width limits of the platform's phys_addr_t and size_t (64 on arm64, where
/// the driver's type_max checks can never fire).
struct address_widths {
  unsigned phys_addr_bits = 64;
  unsigned size_bits = 64;
};

/// The device memory the driver will carve up.
struct device_memory_range {
  std::uint64_t phys_base = 0;
  std::uint64_t length = 0;
  friend constexpr bool operator==(device_memory_range, device_memory_range) = default;
};

/// Whether the device runs with emulated BARs or as plain vfio-pci.
enum class mode : std::uint8_t { emulated, plain };

[[nodiscard]] constexpr text_view to_string(mode m) noexcept { return m == mode::emulated ? "emulated" : "plain"; }

namespace detail {
[[nodiscard]] constexpr std::uint64_t type_max(unsigned bits) noexcept {
  return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
}
}  // namespace detail

/// The driver's fetch of the memory properties, in its order:
/// base missing → EINVAL; base beyond phys_addr_t → EOVERFLOW;
/// size missing → EINVAL; size beyond size_t → EOVERFLOW; size 0 → ENOMEM.
/// (EINVAL is what the kernel's ACPI property lookup returns for a property
/// that does not exist.) Any error here is not a probe failure: the device
/// runs in plain mode.
[[nodiscard]] constexpr result<device_memory_range> fetch_memory(const acpi_properties& props,
                                                                 address_widths widths = {}) noexcept {
  if (!props.gpu_mem_base_pa) return errc::invalid_argument;
  if (*props.gpu_mem_base_pa > detail::type_max(widths.phys_addr_bits)) return errc::value_too_large;
  if (!props.gpu_mem_size) return errc::invalid_argument;
  if (*props.gpu_mem_size > detail::type_max(widths.size_bits)) return errc::value_too_large;
  if (*props.gpu_mem_size == 0) return errc::not_enough_memory;
  return device_memory_range{*props.gpu_mem_base_pa, *props.gpu_mem_size};
}

/// §2.1 step 3: emulated when the memory properties are usable, plain otherwise.
[[nodiscard]] constexpr mode mode_for(const acpi_properties& props, address_widths widths = {}) noexcept {
  return fetch_memory(props, widths).has_value() ? mode::emulated : mode::plain;
}

}  // namespace nvgrace::grace
