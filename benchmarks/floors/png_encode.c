/*
 * Floor for PNG encoding: every image of one or more IDX image files (uint8, n x rows x cols)
 * as an 8-bit grayscale PNG, with one deflate stream reused for all of them (deflateReset),
 * zlib's default level, filter type 0 (none) on every row. Each PNG is also CRC-32'd once more,
 * as a stored zip member must be. The PNGs go, length-prefixed (uint32 little-endian), into one
 * pack file, so that no per-file cost is counted here.
 *
 * Usage: png_encode PACK IDX_IMAGES [IDX_IMAGES ...]
 * Prints: "<images> images, <bytes> PNG bytes, zlib <version>".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_HEADER_BYTES 16
#define BATCH_IMAGES 10000

static const unsigned char PNG_SIGNATURE[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static void put_be32(unsigned char *out, uint32_t value) {
    out[0] = (unsigned char)(value >> 24);
    out[1] = (unsigned char)(value >> 16);
    out[2] = (unsigned char)(value >> 8);
    out[3] = (unsigned char)value;
}

static uint32_t get_be32(const unsigned char *in) {
    return ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | (uint32_t)in[3];
}

/* Appends one chunk (length, type, data, CRC over type and data) at out; returns its size. */
static size_t put_chunk(unsigned char *out, const char *type, const unsigned char *data, uint32_t length) {
    put_be32(out, length);
    memcpy(out + 4, type, 4);
    if (length) memmove(out + 8, data, length);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), out + 4, 4 + length);
    put_be32(out + 8 + length, (uint32_t)crc);
    return 12 + (size_t)length;
}

static void die(const char *what, const char *where) {
    fprintf(stderr, "png_encode: %s: %s\n", where, what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: png_encode PACK IDX_IMAGES [IDX_IMAGES ...]\n");
        return 2;
    }
    FILE *pack = fopen(argv[1], "wb");
    if (!pack) die("cannot create", argv[1]);
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    if (deflateInit(&stream, Z_DEFAULT_COMPRESSION) != Z_OK) die("deflateInit failed", argv[1]);
    unsigned long long images = 0, png_bytes = 0, zip_crc_sum = 0;
    for (int arg = 2; arg < argc; arg++) {
        FILE *idx = fopen(argv[arg], "rb");
        if (!idx) die("cannot open", argv[arg]);
        unsigned char header[IDX_HEADER_BYTES];
        if (fread(header, 1, sizeof header, idx) != sizeof header || get_be32(header) != IDX_IMAGES_MAGIC)
            die("not an IDX file of uint8 images", argv[arg]);
        uint32_t count = get_be32(header + 4), rows = get_be32(header + 8), cols = get_be32(header + 12);
        size_t image_bytes = (size_t)rows * cols, raw_bytes = (size_t)rows * (cols + 1);
        size_t png_capacity = 8 + 25 + 12 + deflateBound(&stream, raw_bytes) + 12;
        unsigned char *batch = malloc(image_bytes * BATCH_IMAGES), *raw = malloc(raw_bytes);
        unsigned char *png = malloc(png_capacity + 4), *idat = malloc(deflateBound(&stream, raw_bytes));
        if (!batch || !raw || !png || !idat) die("out of memory", argv[arg]);
        for (uint32_t done = 0; done < count;) {
            uint32_t todo = count - done < BATCH_IMAGES ? count - done : BATCH_IMAGES;
            if (fread(batch, image_bytes, todo, idx) != todo) die("ends early", argv[arg]);
            for (uint32_t i = 0; i < todo; i++) {
                const unsigned char *image = batch + (size_t)i * image_bytes;
                for (uint32_t row = 0; row < rows; row++) {
                    raw[row * (cols + 1)] = 0; /* filter type: none */
                    memcpy(raw + row * (cols + 1) + 1, image + (size_t)row * cols, cols);
                }
                deflateReset(&stream);
                stream.next_in = raw;
                stream.avail_in = (uInt)raw_bytes;
                stream.next_out = idat;
                stream.avail_out = (uInt)deflateBound(&stream, raw_bytes);
                if (deflate(&stream, Z_FINISH) != Z_STREAM_END) die("deflate failed", argv[arg]);
                uint32_t idat_bytes = (uint32_t)stream.total_out;
                unsigned char *out = png + 4, ihdr[13];
                put_be32(ihdr, cols);
                put_be32(ihdr + 4, rows);
                ihdr[8] = 8;  /* bit depth */
                ihdr[9] = 0;  /* colour type: grayscale */
                ihdr[10] = 0; /* compression: deflate */
                ihdr[11] = 0; /* filter method */
                ihdr[12] = 0; /* no interlace */
                size_t size = sizeof PNG_SIGNATURE;
                memcpy(out, PNG_SIGNATURE, size);
                size += put_chunk(out + size, "IHDR", ihdr, sizeof ihdr);
                size += put_chunk(out + size, "IDAT", idat, idat_bytes);
                size += put_chunk(out + size, "IEND", NULL, 0);
                zip_crc_sum += crc32(crc32(0L, Z_NULL, 0), out, (uInt)size);
                png[0] = (unsigned char)size; /* length prefix, little-endian */
                png[1] = (unsigned char)(size >> 8);
                png[2] = (unsigned char)(size >> 16);
                png[3] = (unsigned char)(size >> 24);
                if (fwrite(png, 1, size + 4, pack) != size + 4) die("write failed", argv[1]);
                png_bytes += size;
                images++;
            }
            done += todo;
        }
        free(batch);
        free(raw);
        free(png);
        free(idat);
        fclose(idx);
    }
    deflateEnd(&stream);
    if (fclose(pack) != 0) die("write failed", argv[1]);
    printf("%llu images, %llu PNG bytes, zlib %s (crc sum %llu)\n", images, png_bytes, zlibVersion(), zip_crc_sum);
    return 0;
}
