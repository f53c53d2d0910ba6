// Every public namespace reachable from the umbrella at once, with using-
// directives, and then the names most likely to collide used unqualified: the
// errors (errc, result, status), the layout and region-info types, the device
// ids, the vfio-user command and the backends' names. A name declared by two of
// these namespaces as two different things (not an overload set, not two aliases
// of one type) is ambiguous here and fails to compile, so this unit proves
// docs/architecture.md's rule that namespaces meant to be used together do not
// declare the same name.
//
// One name is declared twice on purpose and is used qualified below (see "The
// one collision"): a program that opens every namespace must qualify it too.
#include <nvgrace/nvgrace.hpp>

#include <cstdint>
#include <type_traits>
#include <utility>

using namespace nvgrace;
using namespace nvgrace::pci;
using namespace nvgrace::vfio;
using namespace nvgrace::grace;
using namespace nvgrace::mem;
using namespace nvgrace::posix;
using namespace nvgrace::access;
using namespace nvgrace::shim;
using namespace nvgrace::linux_vfio;
using namespace nvgrace::vfio_user;

namespace {
template <class T>
inline constexpr bool is_type = !std::is_void_v<T*>;
}  // namespace

// nvgrace: errors, results, sizes, text, the version.
static_assert(std::is_same_v<status, result<void>>);
static_assert(is_type<result<std::uint64_t>> && is_type<text_view> && is_type<version_info>);
static_assert(errno_name(errc::invalid_argument) == "EINVAL");
static_assert(checked_add(GiB, MiB).value() == GiB + MiB);
static_assert(next_pow2(95 * GiB).value() == 128 * GiB);
static_assert(range_within(0, KiB, TiB));
static_assert(parse_size("96G").value() == 96 * GiB);
static_assert(version.major == NVGRACE_VERSION_MAJOR);

// nvgrace::pci: its register offsets and bit namespaces next to nvgrace::status
// and vfio_user::command.
static_assert(reg::status == 0x06 && reg::command == 0x04 && reg::device_id == 0x02);
static_assert(command_bits::memory != 0 && status_bits::cap_list != 0);
static_assert(config_space_size == 256 && ext_config_space_size == 4096);
static_assert(is_type<ext_cap_header>);

// nvgrace::vfio: the ABI, region info, the device-file concept.
static_assert(is_type<region_info> && is_type<region_info_cap_sparse_mmap> && is_type<irq_info>);
static_assert(is_type<device_info> && is_type<sparse_mmap_area>);
static_assert((region_flags::caps & region_flags::mmap) == 0);
static_assert(region_offset(4) == std::uint64_t{4} << offset_shift);
static_assert(ioctl::get_api_version == vfio_io(0));
static_assert(!device_file<int>);

// nvgrace::grace: ids, layout, generation, region indices, kernel rules.
static_assert(is_type<device_id> && is_type<layout> && is_type<access_plan> && is_type<mmap_plan>);
static_assert(known_devices[0].vendor == nvidia_vendor_id);
static_assert(derive_layout(0x4000'0000'0000, 96 * GiB, generation::hopper)->usemem.reported_size == 128 * GiB);
static_assert(usemem_index == 4 && resmem_index == 2);
static_assert(to_string(generation::blackwell) == "blackwell");
static_assert(is_type<kernel_rule> && is_type<mode> && is_type<direction>);

// nvgrace::mem: memory types and concepts.
static_assert(device_memory<span_memory> && mappable_memory<memfd_memory> && !mappable_memory<anonymous_memory>);
static_assert(is_type<caching> && padding_byte == std::byte{0xFF});

// nvgrace::posix: the owners. linux_vfio and vfio_user name the same types
// (aliases of one type are no ambiguity).
static_assert(is_type<unique_fd> && is_type<mapping> && is_type<mutex> && is_type<lock_guard>);
static_assert(std::is_same_v<unique_fd, nvgrace::posix::unique_fd>);
static_assert(std::is_same_v<mapping, nvgrace::posix::mapping>);

// nvgrace::shim: the in-process device and its options.
static_assert(vfio::device_file<memfd_device>);
static_assert(hopper(96 * GiB).acpi.gpu_mem_size == 96 * GiB && blackwell(GiB).generation == generation::blackwell);
static_assert(is_type<device_options> && is_type<test_hooks> && is_type<region_kind>);

// nvgrace::access: the accessor; `open` finds access::open beside the C
// library's ::open (two functions: an overload set, not an ambiguity).
static_assert(is_type<accessor<memfd_device>> && is_type<area> && is_type<bar_info>);
static_assert(is_type<accessor_options> && is_type<mapped_area>);
static_assert(std::is_same_v<decltype(open(std::declval<memfd_device&>())), result<accessor<memfd_device>>>);
static_assert(std::is_same_v<decltype(map_all), decltype(map_none)>);

// nvgrace::linux_vfio: device addresses and paths.
static_assert(is_type<pci_address> && is_type<system_paths> && is_type<open_mode>);

// nvgrace::vfio_user: protocol, client, server, session.
static_assert(is_type<command> && is_type<header> && is_type<message> && is_type<capabilities>);
static_assert(is_type<client> && is_type<client_options> && is_type<server_options> && is_type<event>);
static_assert(is_type<session<memfd_device>> && is_type<server<memfd_device>>);
static_assert(header_size == 16);

// The one collision: each backend names its device `device` (the namespace picks
// the backend), so with every namespace open it must be qualified.
static_assert(is_type<nvgrace::shim::device<anonymous_memory>> && is_type<nvgrace::linux_vfio::device>);

// Unqualified now that nothing else declares them: the region-index enum, the
// accessor's region description and the region-info size.
static_assert(static_cast<std::uint32_t>(region::bar4) == usemem_index);
static_assert(is_type<region_description>);
static_assert(region_info_size == 32);
