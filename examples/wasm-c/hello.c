/* A WebAssembly event function in C, built with Debian's clang and wasi-libc:
 *
 *   clang --target=wasm32-wasi -O2 -o hello.wasm hello.c
 *   hearth fn deploy hello.wasm --name c-hello --runtime wasm
 *
 * The event arrives on stdin, the result goes to stdout, stderr is the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    static char event[65536];
    size_t n = fread(event, 1, sizeof event - 1, stdin);
    event[n] = 0;
    const char *name = getenv("AWS_LAMBDA_FUNCTION_NAME");
    fprintf(stderr, "C got %zu bytes\n", n);
    printf("{\"language\":\"C\",\"event_bytes\":%zu,\"function\":\"%s\"}\n", n, name ? name : "");
    return strstr(event, "\"fail\"") ? 2 : 0;
}
