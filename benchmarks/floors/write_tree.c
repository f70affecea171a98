/*
 * Floor for writing a tree of small files: every member of a zip of stored members (what
 * export@png writes) becomes a file under OUT_DIR, folders made as needed. One open, write and
 * close per file; nothing is checked (no CRC, no name rules): only the file-system work is left.
 *
 * Usage: write_tree ZIP OUT_DIR
 * Prints: "<files> files, <bytes> bytes".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCAL_HEADER 0x04034b50u
#define CENTRAL_HEADER 0x02014b50u
#define LOCAL_HEADER_BYTES 30
#define MAX_PATH 4096

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void die(const char *what, const char *where) {
    fprintf(stderr, "write_tree: %s: %s (%s)\n", where, what, errno ? strerror(errno) : "-");
    exit(1);
}

/* Folders already made, as an open-addressing hash set of their paths. */
#define MADE_SLOTS 65536
static char *made[MADE_SLOTS];

static int made_before(const char *folder) {
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (const char *c = folder; *c; c++) hash = (hash ^ (unsigned char)*c) * 16777619u;
    for (uint32_t slot = hash % MADE_SLOTS;; slot = (slot + 1) % MADE_SLOTS) {
        if (!made[slot]) {
            made[slot] = strdup(folder);
            if (!made[slot]) die("out of memory", folder);
            return 0;
        }
        if (strcmp(made[slot], folder) == 0) return 1;
    }
}

/* mkdir -p of path's parent folders; one hash look-up per file once they exist. */
static void make_parents(char *path, size_t root_length) {
    char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) <= root_length) return;
    *slash = '\0';
    if (!made_before(path)) {
        for (char *p = path + root_length + 1; *p; p++) {
            if (*p != '/') continue;
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir failed", path);
            *p = '/';
        }
        if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir failed", path);
    }
    *slash = '/';
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: write_tree ZIP OUT_DIR\n");
        return 2;
    }
    int zip_fd = open(argv[1], O_RDONLY);
    struct stat info;
    if (zip_fd < 0 || fstat(zip_fd, &info) != 0) die("cannot open", argv[1]);
    size_t zip_size = (size_t)info.st_size;
    const unsigned char *zip = mmap(NULL, zip_size, PROT_READ, MAP_PRIVATE, zip_fd, 0);
    if (zip == MAP_FAILED) die("cannot map", argv[1]);
    if (mkdir(argv[2], 0755) != 0 && errno != EEXIST) die("mkdir failed", argv[2]);
    char path[MAX_PATH];
    size_t root_length = strlen(argv[2]), offset = 0;
    unsigned long long files = 0, bytes = 0;
    while (offset + LOCAL_HEADER_BYTES <= zip_size && le32(zip + offset) == LOCAL_HEADER) {
        const unsigned char *header = zip + offset;
        uint16_t flags = le16(header + 6), method = le16(header + 8);
        uint32_t size = le32(header + 18), name_length = le16(header + 26), extra_length = le16(header + 28);
        if (flags & 8) die("member sizes are in a data descriptor (streamed zip): not supported", argv[1]);
        if (method != 0 || size == 0xffffffffu) die("member not stored, or zip64: not supported", argv[1]);
        if (root_length + 1 + name_length >= MAX_PATH) die("name too long", argv[1]);
        size_t data = offset + LOCAL_HEADER_BYTES + name_length + extra_length;
        if (data + size > zip_size) die("member runs past the end", argv[1]);
        memcpy(path, argv[2], root_length);
        path[root_length] = '/';
        memcpy(path + root_length + 1, header + LOCAL_HEADER_BYTES, name_length);
        path[root_length + 1 + name_length] = '\0';
        make_parents(path, root_length);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) die("cannot create", path);
        if (size && write(fd, zip + data, size) != (ssize_t)size) die("write failed", path);
        if (close(fd) != 0) die("close failed", path);
        files++;
        bytes += size;
        offset = data + size;
    }
    if (offset + 4 > zip_size || le32(zip + offset) != CENTRAL_HEADER)
        die("no central directory after the members", argv[1]);
    printf("%llu files, %llu bytes\n", files, bytes);
    return 0;
}
