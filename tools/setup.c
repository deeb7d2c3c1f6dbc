/* Buffers, DNS server and CPU pinning for the tools; see setup.h. */
#include "setup.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

void tool_socket_buffers(dg_socket_options *options, const tool_net_options *net)
{
    /* The option rows cap both at INT_MAX. */
    options->recv_buffer_size = (int)net->rcvbuf;
    options->send_buffer_size = (int)net->sndbuf;
}

int tool_dns_servers(const char *prog, const tool_net_options *net)
{
    dg_loop_options options;
    dg_loop *scratch = NULL;
    int rc;

    if (net->dns_server == NULL)
        return TOOL_EXIT_OK;
    dg_loop_options_init(&options);
    options.backend = DG_BACKEND_EPOLL; /* no ring needed to read a list */
    rc = dg_loop_new(&scratch, &options);
    if (rc < 0) {
        tool_error_loop(prog, rc);
        return TOOL_EXIT_FAILURE;
    }
    rc = dg_loop_set_dns_servers(scratch, net->dns_server);
    dg_loop_close(scratch);
    if (rc == DG_ERR_INVALID_ARG_VALUE || *net->dns_server == '\0') {
        tool_error(prog, "bad DNS server '%s': expected IP[:PORT], IPv6 as [IP]:PORT, "
                   "comma-separated", net->dns_server);
        return TOOL_EXIT_USAGE;
    }
    if (rc < 0 || setenv("DGRING_DNS_SERVERS", net->dns_server, 1) != 0) {
        tool_error_code(prog, "DNS server", rc < 0 ? rc : -ENOMEM);
        return TOOL_EXIT_FAILURE;
    }
    return TOOL_EXIT_OK;
}

int tool_pin_thread(const char *prog, const tool_net_options *net, unsigned offset)
{
    cpu_set_t allowed, one;
    int cpu = net->cpu + (int)offset;

    if (net->cpu < 0)
        return TOOL_EXIT_OK;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
        CPU_ZERO(&allowed);
    if (cpu < CPU_SETSIZE && CPU_ISSET(cpu, &allowed)) {
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0)
            return TOOL_EXIT_OK;
    }
    tool_error(prog, "bad CPU %d: this process may run on %d CPUs%s", cpu, CPU_COUNT(&allowed),
               offset > 0 ? " (thread i runs on CPU --cpu + i)" : "");
    return TOOL_EXIT_USAGE;
}

/* net.core.rmem_max or wmem_max, 0 if it cannot be read. */
static uint64_t read_limit(bool receive)
{
    const char *path = receive ? "/proc/sys/net/core/rmem_max" : "/proc/sys/net/core/wmem_max";
    FILE *f = fopen(path, "r");
    uint64_t value = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%" SCNu64, &value) != 1)
        value = 0;
    fclose(f);
    return value;
}

void tool_buffer_read(tool_buffer *buffer, const dg_socket *sock, bool receive, uint64_t asked)
{
    buffer->receive = receive;
    buffer->asked = asked;
    buffer->granted = receive ? dg_socket_get_recv_buffer_size(sock, NULL)
                              : dg_socket_get_send_buffer_size(sock, NULL);
    buffer->limit = read_limit(receive);
}

bool tool_buffer_capped(const tool_buffer *buffer)
{
    return buffer->asked > 0 && buffer->limit > 0 && buffer->asked > buffer->limit;
}

void tool_buffer_print(FILE *out, const tool_buffer *buffer)
{
    const char *what = buffer->receive ? "receive" : "send";
    const char *sysctl = buffer->receive ? "net.core.rmem_max" : "net.core.wmem_max";

    if (buffer->granted < 0)
        fprintf(out, "%s buffer: unknown", what);
    else
        fprintf(out, "%s buffer %d bytes", what, buffer->granted);
    if (buffer->asked == 0)
        fprintf(out, " (the system default, net.core.%s_default)\n",
                buffer->receive ? "rmem" : "wmem");
    else if (tool_buffer_capped(buffer))
        fprintf(out, " (asked %" PRIu64 "; %s=%" PRIu64 " capped it: as root, sysctl -w %s=%"
                PRIu64 " raises it)\n", buffer->asked, sysctl, buffer->limit, sysctl,
                buffer->asked);
    else
        fprintf(out, " (asked %" PRIu64 "; Linux doubles what is asked)\n", buffer->asked);
    fflush(out);
}

void tool_explain_drops(FILE *out, uint64_t drops, const tool_buffer *rcvbuf)
{
    if (drops == 0)
        return;
    fprintf(out, "  the kernel dropped %" PRIu64 " datagrams: the socket's receive queue was full",
            drops);
    if (rcvbuf != NULL && tool_buffer_capped(rcvbuf))
        fprintf(out, " (net.core.rmem_max=%" PRIu64 " capped the buffer: as root, sysctl -w "
                "net.core.rmem_max=%" PRIu64 " raises it)\n", rcvbuf->limit, rcvbuf->asked);
    else if (rcvbuf != NULL && rcvbuf->granted > 0)
        fprintf(out, " (%d bytes: a larger --rcvbuf holds a longer burst)\n", rcvbuf->granted);
    else
        fprintf(out, " (a larger --rcvbuf holds a longer burst)\n");
}

void tool_buffer_json(tool_json *json, const tool_buffer *buffer)
{
    const char *prefix = buffer->receive ? "rcvbuf" : "sndbuf";
    char key[32];

    tool_json_uint(json, prefix, buffer->granted > 0 ? (uint64_t)buffer->granted : 0);
    snprintf(key, sizeof(key), "%s_asked", prefix);
    tool_json_uint(json, key, buffer->asked);
    snprintf(key, sizeof(key), "%s_capped", prefix);
    tool_json_bool(json, key, tool_buffer_capped(buffer));
}
