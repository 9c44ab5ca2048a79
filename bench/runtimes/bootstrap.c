/*
 * A minimal provided.al2023 runtime for lamina's benchmark (bench/run.py --only runtimes).
 *
 *   bootstrap                      the runtime: a Lambda Runtime API client that echoes each
 *                                  event back as its response (blocking sockets, one keep-alive
 *                                  connection to AWS_LAMBDA_RUNTIME_API, TCP_NODELAY)
 *   bootstrap --bare               exit 0 at once (also with LAMINA_BENCH_BARE=1): the floor of
 *                                  exec'ing this binary
 *   bootstrap --hop-server         the floor's tiny HTTP server: prints its port on 127.0.0.1,
 *                                  answers every request with its own body (keep-alive)
 *   bootstrap --hop-client PORT N WARMUP
 *                                  the floor's client: N + WARMUP keep-alive POSTs of "{}" with
 *                                  the runtime's own send/parse code; prints the last N round
 *                                  trips in nanoseconds, one per line
 *
 * Build: cc -O2 -o bootstrap bootstrap.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define HEAD_MAX (64 * 1024)

typedef struct {
    int fd;
    char *buf; /* bytes read but not consumed: buf[0..len) */
    size_t len, cap;
} conn_t;

typedef struct {
    int status;
    size_t content_length;
    char request_id[256];
    char *body; /* points into the connection's buffer; valid until the next read */
    size_t head_len;
} message_t;

static void die(const char *what) {
    fprintf(stderr, "bootstrap: %s: %s\n", what, errno ? strerror(errno) : "protocol error");
    exit(1);
}

static int tcp_connect(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        errno = EINVAL;
        die("address");
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *head, size_t head_len, const char *body, size_t body_len) {
    struct iovec iov[2] = {{(void *)head, head_len}, {(void *)body, body_len}};
    int n = body_len ? 2 : 1;
    struct iovec *v = iov;
    while (n) {
        ssize_t w = writev(fd, v, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        while (n && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            n--;
        }
        if (n) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
}

/* Read more bytes into the connection's buffer; 0 at EOF. */
static int fill(conn_t *c) {
    if (c->len == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 65536;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) die("realloc");
    }
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die("read");
        c->len += (size_t)r;
        return r > 0;
    }
}

static void consume(conn_t *c, size_t n) {
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* One HTTP/1.1 message (request or response) with a Content-Length body; 0 at a clean EOF. */
static int read_message(conn_t *c, message_t *m) {
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        if (c->len > HEAD_MAX) die("head too large");
        if (!fill(c)) {
            if (c->len == 0) return 0;
            errno = 0;
            die("connection closed mid-message");
        }
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    m->status = 0;
    m->content_length = 0;
    m->request_id[0] = 0;
    m->head_len = head_len;
    if (c->len >= 9 && memcmp(c->buf, "HTTP/1.", 7) == 0) m->status = atoi(c->buf + 9);
    /* Header lines: case-insensitive names. */
    char *line = memchr(c->buf, '\n', head_len) + 1;
    while (line < c->buf + head_len - 2) {
        char *eol = memchr(line, '\n', (size_t)(c->buf + head_len - line));
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            size_t name_len = (size_t)(colon - line);
            char *value = colon + 1;
            while (*value == ' ' || *value == '\t') value++;
            size_t value_len = (size_t)(eol - value);
            while (value_len && (value[value_len - 1] == '\r' || value[value_len - 1] == ' ')) value_len--;
            if (name_len == 14 && strncasecmp(line, "content-length", 14) == 0) {
                m->content_length = strtoul(value, NULL, 10);
            } else if (name_len == 29 && strncasecmp(line, "lambda-runtime-aws-request-id", 29) == 0) {
                if (value_len >= sizeof m->request_id) value_len = sizeof m->request_id - 1;
                memcpy(m->request_id, value, value_len);
                m->request_id[value_len] = 0;
            }
        }
        line = eol + 1;
    }
    while (c->len < head_len + m->content_length) {
        if (!fill(c)) {
            errno = 0;
            die("connection closed mid-body");
        }
    }
    m->body = c->buf + head_len;
    return 1;
}

static void runtime_loop(const char *api) {
    char host[256];
    const char *colon = strrchr(api, ':');
    if (!colon || (size_t)(colon - api) >= sizeof host) {
        errno = EINVAL;
        die("AWS_LAMBDA_RUNTIME_API");
    }
    memcpy(host, api, (size_t)(colon - api));
    host[colon - api] = 0;
    conn_t c = {.fd = tcp_connect(host, atoi(colon + 1))};
    char next[512];
    int next_len = snprintf(next, sizeof next,
                            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n", api);
    char post[1024];
    char *event = NULL;
    size_t event_cap = 0;
    for (;;) {
        send_all(c.fd, next, (size_t)next_len, NULL, 0);
        message_t m;
        if (!read_message(&c, &m)) exit(0);
        if (m.status != 200 || !m.request_id[0]) {
            errno = 0;
            fprintf(stderr, "bootstrap: next answered %d\n", m.status);
            exit(1);
        }
        /* The event, copied out of the read buffer (the next read may move it). */
        if (m.content_length > event_cap) {
            event_cap = m.content_length;
            event = realloc(event, event_cap);
            if (!event) die("realloc");
        }
        size_t event_len = m.content_length;
        memcpy(event, m.body, event_len);
        char request_id[256];
        strcpy(request_id, m.request_id);
        consume(&c, m.head_len + m.content_length);
        int post_len = snprintf(post, sizeof post,
                                "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: %s\r\n"
                                "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                                request_id, api, event_len);
        send_all(c.fd, post, (size_t)post_len, event, event_len);
        if (!read_message(&c, &m)) exit(0);
        consume(&c, m.head_len + m.content_length);
    }
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void hop_client(int port, long count, long warmup) {
    conn_t c = {.fd = tcp_connect("127.0.0.1", port)};
    char api[64];
    snprintf(api, sizeof api, "127.0.0.1:%d", port);
    static const char body[] = "{}";
    char post[1024];
    int post_len = snprintf(post, sizeof post,
                            "POST /2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response "
                            "HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                            api, sizeof body - 1);
    int64_t *ns = malloc(sizeof(int64_t) * (size_t)(count + 1));
    if (!ns) die("malloc");
    for (long i = 0; i < warmup + count; i++) {
        int64_t t0 = now_ns();
        send_all(c.fd, post, (size_t)post_len, body, sizeof body - 1);
        message_t m;
        if (!read_message(&c, &m)) {
            errno = 0;
            die("hop server closed");
        }
        consume(&c, m.head_len + m.content_length);
        int64_t t1 = now_ns();
        if (i >= warmup) ns[i - warmup] = t1 - t0;
    }
    for (long i = 0; i < count; i++) printf("%lld\n", (long long)ns[i]);
    fflush(stdout);
}

static void hop_server(void) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 16) != 0) die("listen");
    getsockname(ls, (struct sockaddr *)&addr, &alen);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    char head[512];
    for (;;) { /* one connection at a time, until killed */
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            die("accept");
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t c = {.fd = fd};
        message_t m;
        while (read_message(&c, &m)) {
            int head_len = snprintf(head, sizeof head,
                                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    "Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\n"
                                    "Content-Length: %zu\r\n\r\n",
                                    m.content_length);
            send_all(fd, head, (size_t)head_len, m.body, m.content_length);
            consume(&c, m.head_len + m.content_length);
        }
        close(fd);
        free(c.buf);
    }
}

int main(int argc, char **argv) {
    const char *bare = getenv("LAMINA_BENCH_BARE");
    if ((argc > 1 && strcmp(argv[1], "--bare") == 0) || (bare && strcmp(bare, "1") == 0)) return 0;
    if (argc > 1 && strcmp(argv[1], "--hop-server") == 0) {
        hop_server();
        return 0;
    }
    if (argc > 4 && strcmp(argv[1], "--hop-client") == 0) {
        hop_client(atoi(argv[2]), atol(argv[3]), atol(argv[4]));
        return 0;
    }
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api || !*api) {
        fprintf(stderr, "bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n");
        return 1;
    }
    runtime_loop(api);
    return 0;
}
