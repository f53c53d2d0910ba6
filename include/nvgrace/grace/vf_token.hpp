#pragma once
/// \file
/// The VF token at device open (docs/semantics.md, "VF token"): how the vfio
/// core answers a VF token offered by VFIO_DEVICE_BIND_IOMMUFD with
/// VFIO_DEVICE_BIND_FLAG_TOKEN (device cdev, 6.17+) or in the device name of
/// VFIO_GROUP_GET_DEVICE_FD ("BDF vf_token=UUID"), for a function that is
/// neither an SR-IOV physical function nor a virtual function: the Grace GPU.
/// nvgrace-gpu uses vfio-pci-core's match and match_token_uuid unchanged. Such
/// a function has no VF token, so offering one is EINVAL and offering none is
/// fine (Linux 7.2 vfio_pci_core_match_token_uuid, vfio_pci_core_match).

#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>

#include <cstddef>
#include <cstdint>

namespace nvgrace::grace {

/// The length of a UUID in text: 8-4-4-4-12 hex digits (UUID_STRING_LEN).
inline constexpr std::size_t uuid_string_length = 36;

/// The kernel's uuid_is_valid on the first 36 characters of `text`: '-' at
/// 8, 13, 18 and 23, a hex digit (either case) everywhere else. False when
/// `text` is shorter.
[[nodiscard]] constexpr bool is_valid_uuid(text_view text) noexcept {
  if (text.size() < uuid_string_length) return false;
  for (std::size_t i = 0; i < uuid_string_length; ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

/// match_token_uuid for a function that is neither an SR-IOV PF nor a VF:
/// a token offered → EINVAL ("not a PF or VF"); none → accepted. The token's
/// value never matters.
[[nodiscard]] constexpr status check_vf_token(bool token_offered) noexcept {
  if (token_offered) return errc::invalid_argument;
  return {};
}

/// What the core's match op says of one device for a device name.
enum class name_match : std::uint8_t {
  no_match,  ///< not this device: the group looks further (ENODEV if none matches)
  match,     ///< this device: its fd is opened
};

/// vfio_pci_core_match for the function named `pci_name` (e.g.
/// "0009:01:00.0") and the name user space passed to
/// VFIO_GROUP_GET_DEVICE_FD: the name must start with `pci_name`; anything
/// after it must start with a space (else no match). The rest is options
/// separated by spaces: at most one "vf_token=" followed by a UUID (fewer than
/// 36 characters left, or not a valid UUID → EINVAL); an unknown or a second
/// option → EINVAL. Then the token rule (check_vf_token): a token → EINVAL.
[[nodiscard]] constexpr result<name_match> match_device_name(text_view pci_name, text_view name) noexcept {
  if (!name.starts_with(pci_name)) return name_match::no_match;
  text_view rest = name.substr(pci_name.size());
  bool token = false;
  if (!rest.empty()) {
    if (rest[0] != ' ') return name_match::no_match;
    constexpr text_view vf_token_arg = "vf_token=";
    while (!rest.empty()) {
      if (rest[0] == ' ') {
        rest = rest.substr(1);
        continue;
      }
      if (token || !rest.starts_with(vf_token_arg)) return errc::invalid_argument;  // unknown or duplicate
      rest = rest.substr(vf_token_arg.size());
      if (rest.size() < uuid_string_length || !is_valid_uuid(rest)) return errc::invalid_argument;
      token = true;
      rest = rest.substr(uuid_string_length);
    }
  }
  if (auto s = check_vf_token(token); !s) return s.error();
  return name_match::match;
}

/// VFIO_GROUP_GET_DEVICE_FD's answer when the group holds only the function
/// `pci_name`: its match error, ENODEV when it does not match, else success
/// (the fd is opened).
[[nodiscard]] constexpr status group_device_name_outcome(text_view pci_name, text_view name) noexcept {
  const auto m = match_device_name(pci_name, name);
  if (!m) return m.error();
  if (*m == name_match::no_match) return errc::no_such_device;
  return {};
}

}  // namespace nvgrace::grace
