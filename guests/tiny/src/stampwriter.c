/*
 * stampwriter: dependent generation stamps on two block devices.
 *
 * Writes A(1), B(1), A(2), B(2), ... where each write is a 4 KiB O_DIRECT
 * pwrite that has completed before the next one is issued.  Any capture of
 * both disks that is a single point in time therefore sees newest
 * generations a (on A) and b (on B) with a == b or a == b + 1.
 *
 * Stamp format (little-endian, one 4096-byte block, see txnstorm/stamps.py):
 *   0  char[8]  magic "TXNSTAMP"
 *   8  u32      version (1)
 *  12  u32      disk id
 *  16  u64      generation
 *  24  u64      slot (block index inside the stamp region)
 *  32  u32      crc32 (zlib polynomial) of bytes 0..31
 *  36  zero filled
 * Generation n goes to slot n % slots of the region that starts at --offset.
 *
 * usage: stampwriter DEV_A DEV_B OFFSET SLOTS SECONDS
 * Prints "generations N" when done (after SECONDS or on SIGTERM/SIGINT).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint32_t crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }

static int stamp(int fd, unsigned char *buf, uint32_t disk, uint64_t gen, uint64_t offset, uint64_t slots)
{
    uint64_t slot = gen % slots;
    memset(buf, 0, BLOCK);
    memcpy(buf, "TXNSTAMP", 8);
    put32(buf + 8, 1);
    put32(buf + 12, disk);
    put64(buf + 16, gen);
    put64(buf + 24, slot);
    put32(buf + 32, crc32(buf, 32));
    return pwrite(fd, buf, BLOCK, (off_t)(offset + slot * BLOCK)) == BLOCK ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s DEV_A DEV_B OFFSET SLOTS SECONDS\n", argv[0]);
        return 2;
    }
    uint64_t offset = strtoull(argv[3], NULL, 0), slots = strtoull(argv[4], NULL, 0);
    double seconds = atof(argv[5]);
    if (offset % BLOCK || slots == 0) {
        fprintf(stderr, "stampwriter: OFFSET must be 4096-aligned and SLOTS > 0\n");
        return 2;
    }
    int fds[2] = { open(argv[1], O_WRONLY | O_DIRECT), open(argv[2], O_WRONLY | O_DIRECT) };
    if (fds[0] < 0 || fds[1] < 0) {
        perror("stampwriter: open");
        return 1;
    }
    unsigned char *buf;
    if (posix_memalign((void **)&buf, BLOCK, BLOCK)) return 1;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t gen = 0;
    while (!stop) {
        gen++;
        for (int d = 0; d < 2; d++) {
            if (stamp(fds[d], buf, (uint32_t)d, gen, offset, slots)) {
                perror("stampwriter: pwrite");
                return 1;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 >= seconds) break;
    }
    printf("generations %llu\n", (unsigned long long)gen);
    return 0;
}
