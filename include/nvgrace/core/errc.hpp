#pragma once
/// \file
/// `nvgrace::errc`: errno values as a scoped enum, with their names and messages.
///
/// Every error nvgrace reports is an errno value, exactly the one the kernel (or
/// the system call) gives for the same condition. The enumerators carry the names
/// of `errc`'s, so code reads the same; the enum itself needs only
/// `<cerrno>`, which keeps the constexpr model free of `<system_error>` (about
/// half of the model's parse cost). `<nvgrace/core/error_code.hpp>` converts to
/// `errc`, `std::error_code` and `std::error_condition`.

#include <nvgrace/core/text_view.hpp>

#include <cerrno>
#include <cstddef>

namespace nvgrace {

/// An errno value. `errc{}` (0) means "no error". Any int value may be held (a
/// system call can return errnos this list does not name).
enum class errc : int {
  address_family_not_supported = EAFNOSUPPORT,
  address_in_use = EADDRINUSE,
  address_not_available = EADDRNOTAVAIL,
  already_connected = EISCONN,
  argument_list_too_long = E2BIG,
  argument_out_of_domain = EDOM,
  bad_address = EFAULT,
  bad_file_descriptor = EBADF,
  bad_message = EBADMSG,
  broken_pipe = EPIPE,
  connection_aborted = ECONNABORTED,
  connection_already_in_progress = EALREADY,
  connection_refused = ECONNREFUSED,
  connection_reset = ECONNRESET,
  cross_device_link = EXDEV,
  destination_address_required = EDESTADDRREQ,
  device_or_resource_busy = EBUSY,
  directory_not_empty = ENOTEMPTY,
  executable_format_error = ENOEXEC,
  file_exists = EEXIST,
  file_too_large = EFBIG,
  filename_too_long = ENAMETOOLONG,
  function_not_supported = ENOSYS,
  host_unreachable = EHOSTUNREACH,
  identifier_removed = EIDRM,
  illegal_byte_sequence = EILSEQ,
  inappropriate_io_control_operation = ENOTTY,
  interrupted = EINTR,
  invalid_argument = EINVAL,
  invalid_seek = ESPIPE,
  io_error = EIO,
  is_a_directory = EISDIR,
  message_size = EMSGSIZE,
  network_down = ENETDOWN,
  network_reset = ENETRESET,
  network_unreachable = ENETUNREACH,
  no_buffer_space = ENOBUFS,
  no_child_process = ECHILD,
  no_link = ENOLINK,
  no_lock_available = ENOLCK,
  no_message_available = ENODATA,
  no_message = ENOMSG,
  no_protocol_option = ENOPROTOOPT,
  no_space_on_device = ENOSPC,
  no_stream_resources = ENOSR,
  no_such_device_or_address = ENXIO,
  no_such_device = ENODEV,
  no_such_file_or_directory = ENOENT,
  no_such_process = ESRCH,
  not_a_directory = ENOTDIR,
  not_a_socket = ENOTSOCK,
  not_a_stream = ENOSTR,
  not_connected = ENOTCONN,
  not_enough_memory = ENOMEM,
  not_supported = ENOTSUP,
  operation_canceled = ECANCELED,
  operation_in_progress = EINPROGRESS,
  operation_not_permitted = EPERM,
  operation_not_supported = EOPNOTSUPP,
  operation_would_block = EWOULDBLOCK,
  owner_dead = EOWNERDEAD,
  permission_denied = EACCES,
  protocol_error = EPROTO,
  protocol_not_supported = EPROTONOSUPPORT,
  read_only_file_system = EROFS,
  resource_deadlock_would_occur = EDEADLK,
  resource_unavailable_try_again = EAGAIN,
  result_out_of_range = ERANGE,
  state_not_recoverable = ENOTRECOVERABLE,
  stream_timeout = ETIME,
  text_file_busy = ETXTBSY,
  timed_out = ETIMEDOUT,
  too_many_files_open_in_system = ENFILE,
  too_many_files_open = EMFILE,
  too_many_links = EMLINK,
  too_many_symbolic_link_levels = ELOOP,
  value_too_large = EOVERFLOW,
  wrong_protocol_type = EPROTOTYPE,
};

/// The positive errno value of a code.
[[nodiscard]] constexpr int to_errno(errc e) noexcept { return static_cast<int>(e); }

namespace detail {

// Plain pointers, so the table costs nothing to compile until a name is asked for.
struct errno_text {
  const char* name;
  const char* message;
};

// Linux's errno numbering (asm-generic), 1 to 133, with the C library's messages.
inline constexpr errno_text errno_table[] = {
    {"EPERM", "Operation not permitted"},
    {"ENOENT", "No such file or directory"},
    {"ESRCH", "No such process"},
    {"EINTR", "Interrupted system call"},
    {"EIO", "Input/output error"},
    {"ENXIO", "No such device or address"},
    {"E2BIG", "Argument list too long"},
    {"ENOEXEC", "Exec format error"},
    {"EBADF", "Bad file descriptor"},
    {"ECHILD", "No child processes"},
    {"EAGAIN", "Resource temporarily unavailable"},
    {"ENOMEM", "Cannot allocate memory"},
    {"EACCES", "Permission denied"},
    {"EFAULT", "Bad address"},
    {"ENOTBLK", "Block device required"},
    {"EBUSY", "Device or resource busy"},
    {"EEXIST", "File exists"},
    {"EXDEV", "Invalid cross-device link"},
    {"ENODEV", "No such device"},
    {"ENOTDIR", "Not a directory"},
    {"EISDIR", "Is a directory"},
    {"EINVAL", "Invalid argument"},
    {"ENFILE", "Too many open files in system"},
    {"EMFILE", "Too many open files"},
    {"ENOTTY", "Inappropriate ioctl for device"},
    {"ETXTBSY", "Text file busy"},
    {"EFBIG", "File too large"},
    {"ENOSPC", "No space left on device"},
    {"ESPIPE", "Illegal seek"},
    {"EROFS", "Read-only file system"},
    {"EMLINK", "Too many links"},
    {"EPIPE", "Broken pipe"},
    {"EDOM", "Numerical argument out of domain"},
    {"ERANGE", "Numerical result out of range"},
    {"EDEADLK", "Resource deadlock avoided"},
    {"ENAMETOOLONG", "File name too long"},
    {"ENOLCK", "No locks available"},
    {"ENOSYS", "Function not implemented"},
    {"ENOTEMPTY", "Directory not empty"},
    {"ELOOP", "Too many levels of symbolic links"},
    {"", ""},  // 41: unused on Linux
    {"ENOMSG", "No message of desired type"},
    {"EIDRM", "Identifier removed"},
    {"ECHRNG", "Channel number out of range"},
    {"EL2NSYNC", "Level 2 not synchronized"},
    {"EL3HLT", "Level 3 halted"},
    {"EL3RST", "Level 3 reset"},
    {"ELNRNG", "Link number out of range"},
    {"EUNATCH", "Protocol driver not attached"},
    {"ENOCSI", "No CSI structure available"},
    {"EL2HLT", "Level 2 halted"},
    {"EBADE", "Invalid exchange"},
    {"EBADR", "Invalid request descriptor"},
    {"EXFULL", "Exchange full"},
    {"ENOANO", "No anode"},
    {"EBADRQC", "Invalid request code"},
    {"EBADSLT", "Invalid slot"},
    {"", ""},  // 58: unused on Linux
    {"EBFONT", "Bad font file format"},
    {"ENOSTR", "Device not a stream"},
    {"ENODATA", "No data available"},
    {"ETIME", "Timer expired"},
    {"ENOSR", "Out of streams resources"},
    {"ENONET", "Machine is not on the network"},
    {"ENOPKG", "Package not installed"},
    {"EREMOTE", "Object is remote"},
    {"ENOLINK", "Link has been severed"},
    {"EADV", "Advertise error"},
    {"ESRMNT", "Srmount error"},
    {"ECOMM", "Communication error on send"},
    {"EPROTO", "Protocol error"},
    {"EMULTIHOP", "Multihop attempted"},
    {"EDOTDOT", "RFS specific error"},
    {"EBADMSG", "Bad message"},
    {"EOVERFLOW", "Value too large for defined data type"},
    {"ENOTUNIQ", "Name not unique on network"},
    {"EBADFD", "File descriptor in bad state"},
    {"EREMCHG", "Remote address changed"},
    {"ELIBACC", "Can not access a needed shared library"},
    {"ELIBBAD", "Accessing a corrupted shared library"},
    {"ELIBSCN", ".lib section in a.out corrupted"},
    {"ELIBMAX", "Attempting to link in too many shared libraries"},
    {"ELIBEXEC", "Cannot exec a shared library directly"},
    {"EILSEQ", "Invalid or incomplete multibyte or wide character"},
    {"ERESTART", "Interrupted system call should be restarted"},
    {"ESTRPIPE", "Streams pipe error"},
    {"EUSERS", "Too many users"},
    {"ENOTSOCK", "Socket operation on non-socket"},
    {"EDESTADDRREQ", "Destination address required"},
    {"EMSGSIZE", "Message too long"},
    {"EPROTOTYPE", "Protocol wrong type for socket"},
    {"ENOPROTOOPT", "Protocol not available"},
    {"EPROTONOSUPPORT", "Protocol not supported"},
    {"ESOCKTNOSUPPORT", "Socket type not supported"},
    {"EOPNOTSUPP", "Operation not supported"},
    {"EPFNOSUPPORT", "Protocol family not supported"},
    {"EAFNOSUPPORT", "Address family not supported by protocol"},
    {"EADDRINUSE", "Address already in use"},
    {"EADDRNOTAVAIL", "Cannot assign requested address"},
    {"ENETDOWN", "Network is down"},
    {"ENETUNREACH", "Network is unreachable"},
    {"ENETRESET", "Network dropped connection on reset"},
    {"ECONNABORTED", "Software caused connection abort"},
    {"ECONNRESET", "Connection reset by peer"},
    {"ENOBUFS", "No buffer space available"},
    {"EISCONN", "Transport endpoint is already connected"},
    {"ENOTCONN", "Transport endpoint is not connected"},
    {"ESHUTDOWN", "Cannot send after transport endpoint shutdown"},
    {"ETOOMANYREFS", "Too many references: cannot splice"},
    {"ETIMEDOUT", "Connection timed out"},
    {"ECONNREFUSED", "Connection refused"},
    {"EHOSTDOWN", "Host is down"},
    {"EHOSTUNREACH", "No route to host"},
    {"EALREADY", "Operation already in progress"},
    {"EINPROGRESS", "Operation now in progress"},
    {"ESTALE", "Stale file handle"},
    {"EUCLEAN", "Structure needs cleaning"},
    {"ENOTNAM", "Not a XENIX named type file"},
    {"ENAVAIL", "No XENIX semaphores available"},
    {"EISNAM", "Is a named type file"},
    {"EREMOTEIO", "Remote I/O error"},
    {"EDQUOT", "Disk quota exceeded"},
    {"ENOMEDIUM", "No medium found"},
    {"EMEDIUMTYPE", "Wrong medium type"},
    {"ECANCELED", "Operation canceled"},
    {"ENOKEY", "Required key not available"},
    {"EKEYEXPIRED", "Key has expired"},
    {"EKEYREVOKED", "Key has been revoked"},
    {"EKEYREJECTED", "Key was rejected by service"},
    {"EOWNERDEAD", "Owner died"},
    {"ENOTRECOVERABLE", "State not recoverable"},
    {"ERFKILL", "Operation not possible due to RF-kill"},
    {"EHWPOISON", "Memory page has hardware error"},
};

static_assert(EINVAL == 22 && ETIME == 62 && EOVERFLOW == 75 && EHWPOISON == 133,
              "the name table follows Linux's errno numbering");

[[nodiscard]] constexpr const errno_text* find_errno(int e) noexcept {
  if (e < 1 || static_cast<std::size_t>(e) > sizeof(errno_table) / sizeof(errno_table[0])) return nullptr;
  const errno_text& t = errno_table[e - 1];
  return t.name[0] == '\0' ? nullptr : &t;
}

}  // namespace detail

/// The symbolic name of an errno value ("EINVAL"), for every value Linux defines;
/// "OK" for 0 and "E?" for a value that names no errno. The view always refers
/// to a NUL-terminated literal, so `.data()` is a C string.
[[nodiscard]] constexpr text_view errno_name(errc e) noexcept {
  if (e == errc{}) return "OK";
  const auto* t = detail::find_errno(to_errno(e));
  return t != nullptr ? t->name : "E?";
}

/// The C library's message for an errno value ("Invalid argument"); "Success"
/// for 0 and "Unknown error" otherwise. NUL-terminated like errno_name.
[[nodiscard]] constexpr text_view errno_message(errc e) noexcept {
  if (e == errc{}) return "Success";
  const auto* t = detail::find_errno(to_errno(e));
  return t != nullptr ? t->message : "Unknown error";
}

}  // namespace nvgrace
