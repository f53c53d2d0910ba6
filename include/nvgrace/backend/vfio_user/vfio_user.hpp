#pragma once
/// \file
/// Umbrella for nvgrace::vfio_user (docs/vfio-user.md): the wire format
/// (protocol.hpp), the VERSION capabilities (capabilities.hpp), sockets and
/// framing (transport.hpp), the server for any vfio::device_file
/// (session.hpp, the protocol state; server.hpp, the socket loop) and the
/// client that is one (client.hpp).

#include <nvgrace/backend/vfio_user/capabilities.hpp>
#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/backend/vfio_user/protocol.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>
#include <nvgrace/backend/vfio_user/session.hpp>
#include <nvgrace/backend/vfio_user/transport.hpp>
