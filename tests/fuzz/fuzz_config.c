/* fuzz_config.c — libFuzzer target for bayeux.conf parsing: the input is a config file
 * (loaded through a memfd), and its first line is also tried as one env-style override.
 * Invariants: a load never crashes or leaks, an error always says "file:line: reason",
 * and numbers that loaded are within their documented bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    bx_log_set_level(BX_LOG_ERROR); /* ignored-key warnings would flood the fuzzer's output */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bx_config cfg;
    CHECK(bx_config_defaults(&cfg) == 0);
    int fd = memfd_create("bayeux.conf", 0);
    CHECK(fd >= 0);
    CHECK(write(fd, data, size) == (ssize_t)size);
    char path[64], err[512] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (bx_config_load_file(&cfg, path, 1, err, sizeof err) != 0) {
        CHECK(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
    } else {
        for (int t = 0; t < BX_TR_COUNT; t++) {
            CHECK(cfg.tr[t].timeout >= 0 && cfg.tr[t].maxMessageSize >= 1);
            CHECK(cfg.tr[t].maxQueue >= -1);
        }
        CHECK(cfg.tr[BX_TR_CALLBACK_POLLING].metaConnectDeliverOnly == 1);
        CHECK(cfg.duplicateMetaConnectHttpResponseCode >= 400 && cfg.duplicateMetaConnectHttpResponseCode <= 599);
        CHECK(cfg.redisPort >= 1 && cfg.redisPort <= 65535);
        CHECK(cfg.maxNestingDepth >= 2 && cfg.allowedTransports && cfg.logLevel);
        int any = 0;
        for (int t = 0; t < BX_TR_COUNT; t++) any |= bx_config_transport_allowed(&cfg, (bx_transport)t);
        CHECK(any);
    }
    close(fd);
    /* first line as "key=value" through bx_config_set */
    /* not strndup: data has no NUL, and ASan's strict_string_checks (tests/run.sh) reads to one */
    char *line = malloc(size + 1);
    CHECK(line);
    memcpy(line, data, size);
    line[size] = '\0';
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *eq = strchr(line, '=');
    if (eq) {
        *eq = '\0';
        (void)bx_config_set(&cfg, line, eq + 1, err, sizeof err);
    }
    free(line);
    bx_config_free(&cfg);
    return 0;
}
