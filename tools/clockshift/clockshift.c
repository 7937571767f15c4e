/*
 * clockshift: move a process's wall clock by a fixed number of seconds, for the
 * date-shifted test runs (scripts/test-dates.sh). Preloaded with LD_PRELOAD, it adds
 * GOLDENHOUR_CLOCK_OFFSET seconds to every reading of the real-time clock (time,
 * gettimeofday, clock_gettime on CLOCK_REALTIME, timespec_get) and leaves the
 * monotonic clock alone, so sleeps, lock timeouts and thread waits are untouched.
 * Child processes inherit it through the environment.
 *
 * Why not Debian's libfaketime 0.9.10: with the monotonic clock faked, Python 3.11's
 * lock and Event waits (sem_clockwait on CLOCK_MONOTONIC, not intercepted) wait for
 * the whole offset; with FAKETIME_DONT_FAKE_MONOTONIC, time.sleep fails with EINVAL
 * (clock_nanosleep with TIMER_ABSTIME is shifted anyway). Both seen here.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long offset_seconds(void)
{
    static int read;
    static long long offset;
    if (!read) {
        const char *text = getenv("GOLDENHOUR_CLOCK_OFFSET");
        offset = text ? atoll(text) : 0;
        read = 1;
    }
    return offset;
}

static int is_wall_clock(clockid_t id)
{
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int result = real(id, ts);
    if (result == 0 && is_wall_clock(id))
        ts->tv_sec += offset_seconds();
    return result;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    static int (*real)(struct timeval *, void *);
    if (!real)
        real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    int result = real(tv, tz);
    if (result == 0)
        tv->tv_sec += offset_seconds();
    return result;
}

time_t time(time_t *out)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (out)
        *out = now.tv_sec;
    return now.tv_sec;
}

int timespec_get(struct timespec *ts, int base)
{
    if (base != TIME_UTC || clock_gettime(CLOCK_REALTIME, ts) != 0)
        return 0;
    return base;
}
