/* A program outside the tree, built only from the installed headers and
 * dgring.pc (by .ci/run): sends one datagram to itself over loopback. */
#include <dgring.h>
#include <stdio.h>

static int received;

static void on_message(dg_socket *sock, const dg_message *msg, void *data)
{
    (void)data;
    received = msg->length == 2;
    dg_socket_close(sock, NULL, NULL);
}

int main(void)
{
    dg_loop *loop;
    dg_socket *sock;
    dg_address self;
    dg_socket_options options = {.type = DG_UDP4};
    dg_socket_handlers handlers = {.on_message = on_message};
    int ret = dg_loop_new(&loop, NULL);
    if (ret == 0)
        ret = dg_socket_create(loop, &options, &handlers, NULL, &sock);
    if (ret == 0)
        ret = dg_socket_bind(sock, 0, "127.0.0.1", NULL, NULL);
    if (ret == 0)
        ret = dg_socket_address(sock, &self);
    if (ret == 0)
        ret = dg_socket_send(sock, "hi", 2, self.port, "127.0.0.1", NULL, NULL);
    if (ret == 0)
        ret = dg_loop_run(loop, DG_RUN_DEFAULT);
    if (ret == 0)
        ret = dg_loop_close(loop);
    printf("consumer: dgring %s, %s, received=%d\n", dg_version_string(), dg_err_name(ret),
           received);
    return ret == 0 && received ? 0 : 1;
}
