#pragma once
/// \file
/// The devices nvgrace-gpu binds to (§1) and the generation rule (§2.2).

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>
#include <nvgrace/pci/config.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>

namespace nvgrace::grace {

/// Grace Hopper has the 1 GiB uncached carve-out (the "MIG hardware bug");
/// Grace Blackwell does not, and exposes its real BAR at index 2.
enum class generation : std::uint8_t { hopper, blackwell };

[[nodiscard]] constexpr text_view to_string(generation g) noexcept {
  return g == generation::hopper ? "hopper" : "blackwell";
}

inline constexpr std::uint16_t nvidia_vendor_id = 0x10DE;

/// One entry of the driver's PCI id table.
struct device_id {
  std::uint16_t vendor;
  std::uint16_t device;
  text_view name;
  grace::generation generation;
};

/// Every id the driver binds (all driver_override-only).
inline constexpr std::array<device_id, 5> known_devices{{
    {nvidia_vendor_id, 0x2342, "GH200 120GB", generation::hopper},
    {nvidia_vendor_id, 0x2345, "GH200 480GB", generation::hopper},
    {nvidia_vendor_id, 0x2348, "GH200", generation::hopper},
    {nvidia_vendor_id, 0x2941, "GB200", generation::blackwell},
    {nvidia_vendor_id, 0x31C2, "GB300", generation::blackwell},
}};

/// The table entry for a vendor/device pair, if the driver has one.
[[nodiscard]] constexpr std::optional<device_id> find_device(std::uint16_t vendor, std::uint16_t device) noexcept {
  for (const auto& d : known_devices)
    if (d.vendor == vendor && d.device == device) return d;
  return std::nullopt;
}

/// The driver's name in sysfs (/sys/bus/pci/drivers/nvgrace_gpu_vfio_pci).
inline constexpr text_view driver_name = "nvgrace_gpu_vfio_pci";

/// Whether the driver binds a function: only a listed id, and only when the
/// function's driver_override names the driver (its id table entries are
/// driver_override-only; a matching id alone never binds it).
[[nodiscard]] constexpr bool binds(std::uint16_t vendor, std::uint16_t device, text_view driver_override) noexcept {
  return find_device(vendor, device).has_value() && driver_override == driver_name;
}

/// The NVIDIA DVSEC that carries the carve-out bit.
inline constexpr std::uint16_t gpu_cap_dvsec_id = 3;
/// Offset of its 16-bit capability word inside the DVSEC.
inline constexpr std::uint16_t gpu_cap_dvsec_word = 0xA;
/// Bit 0 of that word: MIG works with cached resmem, so no carve-out.
inline constexpr std::uint16_t mig_supported_with_cached_resmem = 0x1;

/// §2.2: the generation implied by a device's extended config space. A DVSEC
/// (vendor 0x10DE, id 3) whose word at +0xA has bit 0 set means Blackwell; a
/// missing DVSEC or a clear bit means Hopper. A malformed capability list is
/// an error (EBADMSG) rather than a guess.
[[nodiscard]] constexpr result<generation> generation_from_config(std::span<const std::byte> config) {
  const auto dvsec = pci::find_dvsec(config, nvidia_vendor_id, gpu_cap_dvsec_id);
  if (!dvsec) {
    if (dvsec.error() == errc::no_such_file_or_directory) return generation::hopper;
    return dvsec.error();
  }
  const std::size_t word_at = std::size_t{*dvsec} + gpu_cap_dvsec_word;
  if (word_at + 2 > config.size()) return errc::bad_message;
  const auto word = load_le<std::uint16_t>(config, word_at);
  return (word & mig_supported_with_cached_resmem) ? generation::blackwell : generation::hopper;
}

/// §2.2 as the driver applies it: Blackwell only when the DVSEC is found and
/// its bit 0 is set; in every other case, including a capability list the
/// driver's walk cannot get through (a cycle, a pointer below 0x100, a
/// truncated DVSEC), the driver finds no DVSEC and assumes Hopper.
/// generation_from_config() reports those malformed lists as EBADMSG instead.
[[nodiscard]] constexpr generation driver_generation(std::span<const std::byte> config) noexcept {
  return generation_from_config(config).value_or(generation::hopper);
}

}  // namespace nvgrace::grace
