/* dgring: UDP datagrams on io_uring, with Node's dgram API in C.
 *
 * Include this header only; it pulls in the rest. Link with
 * `pkg-config --cflags --libs dgring`.
 */
#ifndef DGRING_H
#define DGRING_H

#include "dgring/version.h"
#include "dgring/error.h"
#include "dgring/loop.h"
#include "dgring/signal.h"
#include "dgring/socket.h"
#include "dgring/address.h"
#include "dgring/resolver.h"
#include "dgring/group.h"
#include "dgring/alloc.h"

#endif
