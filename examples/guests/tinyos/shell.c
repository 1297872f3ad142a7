/*
 * The shell: reads lines from the PV console ring, runs commands. The console has no line
 * discipline and the hypervisor shows output a whole line at a time, so the shell prints its
 * prompt as a line of its own and shows each command it read ("> echo pvkit") before the answer.
 * While no input is there it runs the scheduler's due tasks and idles until the next tick.
 */
#include "kernel.h"

#define LINE_CAPACITY 80 /* a line of at most 79 characters and its NUL */
#define HISTORY_LINES (4096 / LINE_CAPACITY - 1)

struct line_editor {
    char text[LINE_CAPACITY];
    size_t length;
    bool too_long;       /* characters were dropped: the line is refused */
    size_t unprintable;  /* control characters (other than the line ends and backspace) dropped */
    bool after_cr;       /* "\r\n" ends one line, not two */
};

/* The last HISTORY_LINES commands, in a page of their own from the page allocator. */
struct history {
    uint64_t count;
    char lines[HISTORY_LINES][LINE_CAPACITY];
};
_Static_assert(sizeof(struct history) <= 4096, "the history fits its page");

static struct history *history;

/* Feeds one typed character; true when it ended a line. */
static bool edit_line(struct line_editor *editor, char c)
{
    const bool after_cr = editor->after_cr;
    editor->after_cr = c == '\r';
    if (c == '\n' && after_cr)
        return false;
    if (c == '\r' || c == '\n')
        return true;
    if (c == '\b' || c == 0x7f) {
        if (editor->length > 0)
            --editor->length;
    } else if (c < 0x20 || c > 0x7e) {
        ++editor->unprintable;
    } else if (editor->length + 1 < LINE_CAPACITY) {
        editor->text[editor->length++] = c;
    } else {
        editor->too_long = true;
    }
    return false;
}

/* Reads one line into `editor`, running tasks while waiting; no line is ever cut short. */
static void read_line(struct line_editor *editor)
{
    *editor = (struct line_editor){.after_cr = editor->after_cr};
    static char pending[32]; /* typed characters read from the ring, not yet fed */
    static size_t pending_length, pending_next;
    for (;;) {
        while (pending_next < pending_length) {
            if (edit_line(editor, pending[pending_next++])) {
                editor->text[editor->length] = '\0';
                return;
            }
        }
        const uint64_t tick = timer_ticks();
        /* A deadline already passed: take what is there, do not wait. */
        pending_length = pvk_console_read(pending, sizeof pending, pvk_monotonic_ns());
        pending_next = 0;
        if (pending_length == 0) {
            tasks_run_due();
            timer_wait_for_tick(tick);
        }
    }
}

static void remember(const char *line)
{
    char *slot = history->lines[history->count++ % HISTORY_LINES];
    pvk_snprintf(slot, LINE_CAPACITY, "%s", line);
}

/* "123" -> 123; false for anything but 1 to 9 digits. */
static bool parse_number(const char *text, uint64_t *number)
{
    *number = 0;
    size_t digits = 0;
    for (; *text >= '0' && *text <= '9'; ++text, ++digits)
        *number = *number * 10 + (uint64_t)(*text - '0');
    return *text == '\0' && digits > 0 && digits <= 9;
}

/* Each command gets the text after its name (spaces skipped); false ends the shell. */
struct command {
    const char *name;
    const char *help;
    bool (*run)(const char *arguments);
};
static bool command_help(const char *arguments);

static bool command_echo(const char *arguments)
{
    pvk_printf("%s\n", arguments);
    return true;
}

static bool command_uptime(const char *arguments)
{
    (void)arguments;
    const uint64_t up_ms = (pvk_monotonic_ns() - boot_time_ns()) / NS_PER_MS;
    pvk_printf("up %lu.%03lu s (pvclock), %lu heartbeats\n", (unsigned long)(up_ms / 1000),
               (unsigned long)(up_ms % 1000), (unsigned long)tasks_heartbeats());
    const volatile struct pvk_shared_info *shared = pvk_shared_info();
    if (shared->wc_sec == 0 && shared->wc_sec_hi == 0) { /* a hypervisor without a real-time clock */
        pvk_printf("wall clock: not set by the hypervisor\n");
    } else {
        uint64_t seconds;
        uint32_t nanoseconds;
        pvk_wall_clock(&seconds, &nanoseconds);
        pvk_printf("wall clock: %lu s since 1970\n", (unsigned long)seconds);
    }
    return true;
}

static bool command_ticks(const char *arguments)
{
    (void)arguments;
    pvk_printf("ticks: %lu at %u Hz (VIRQ_TIMER on port %u), %lu lost\n", (unsigned long)timer_ticks(), TICK_HZ,
               (unsigned)timer_port(), (unsigned long)tasks_lost_ticks());
    return true;
}

static bool command_mem(const char *arguments)
{
    (void)arguments;
    const struct memory_usage usage = memory_usage();
    const struct pvk_page_usage pages = pvk_page_get_usage();
    const struct pvk_heap_usage heap = pvk_heap_get_usage();
    pvk_printf("pages: %lu of %lu free (%lu at boot), %lu held by tinyos\n", (unsigned long)pages.free,
               (unsigned long)pages.pages, (unsigned long)usage.pages_free_at_boot, (unsigned long)usage.pages_held);
    pvk_printf("heap: %lu blocks, %lu bytes in use (tinyos asked for %lu blocks, %lu bytes)\n",
               (unsigned long)heap.blocks, (unsigned long)heap.bytes, (unsigned long)usage.heap_blocks,
               (unsigned long)usage.heap_bytes);
    return true;
}

static bool command_tasks(const char *arguments)
{
    (void)arguments;
    tasks_print();
    return true;
}

static bool command_sleep(const char *arguments)
{
    uint64_t ms;
    if (!parse_number(arguments, &ms) || ms == 0 || ms > 10000) {
        pvk_printf("usage: sleep MILLISECONDS (1 to 10000)\n");
        return true;
    }
    const uint64_t until = timer_ticks() + (ms * TICK_HZ + 999) / 1000;
    for (uint64_t now = timer_ticks(); now < until; now = timer_ticks()) {
        tasks_run_due();
        timer_wait_for_tick(now);
    }
    pvk_printf("slept %lu ms\n", (unsigned long)ms);
    return true;
}

static bool command_history(const char *arguments)
{
    (void)arguments;
    const uint64_t first = history->count > HISTORY_LINES ? history->count - HISTORY_LINES : 0;
    for (uint64_t i = first; i < history->count; ++i)
        pvk_printf("%4lu  %s\n", (unsigned long)(i + 1), history->lines[i % HISTORY_LINES]);
    return true;
}

static bool command_xs(const char *arguments)
{
    char value[LINE_CAPACITY];
    if (*arguments == '\0') {
        pvk_printf("usage: xs PATH (relative to /local/domain/<id>, or absolute)\n");
        return true;
    }
    const int status = store_read(arguments, value, sizeof value);
    if (status == 0)
        pvk_printf("%.40s = %s\n", arguments, value);
    else if (status == -PVK_XEN_ENOENT)
        pvk_printf("xs: %.40s: no such node\n", arguments);
    else if (status == -PVK_XEN_ERANGE)
        pvk_printf("xs: %.40s: value longer than %d characters\n", arguments, LINE_CAPACITY - 1);
    else if (status == -PVK_XEN_EACCES)
        pvk_printf("xs: %.40s: permission denied\n", arguments);
    else
        pvk_printf("xs: %.40s: error %d\n", arguments, status);
    return true;
}

/* A page fault on purpose, to see what a crash looks like (docs/porting-guide.md, debugging). */
static bool command_crash(const char *arguments)
{
    (void)arguments;
    pvk_printf("crashing on purpose: reading address 0x10\n");
    (void)pvk_console_flush(pvk_monotonic_ns() + 1000 * NS_PER_MS); /* out before the domain dies */
    volatile uintptr_t address = 0x10; /* through a variable: the compiler must not see it is bad */
    return *(volatile const int *)address != 0;
}

static bool command_halt(const char *arguments)
{
    (void)arguments;
    return false;
}

static const struct command commands[] = {
    {"help", "list the commands", command_help},
    {"echo", "echo TEXT: print TEXT", command_echo},
    {"uptime", "time since boot (pvclock) and the wall clock", command_uptime},
    {"ticks", "timer interrupts handled", command_ticks},
    {"mem", "pages and heap in use", command_mem},
    {"tasks", "the scheduler's tasks", command_tasks},
    {"sleep", "sleep MS: wait MS milliseconds, ticks going on", command_sleep},
    {"history", "the commands typed so far", command_history},
    {"xs", "xs PATH: read a xenstore node", command_xs},
    {"crash", "fault on purpose: see how a crash is reported", command_crash},
    {"halt", "power off", command_halt},
    {NULL, NULL, NULL},
};

static bool command_help(const char *arguments)
{
    (void)arguments;
    for (const struct command *command = commands; command->name != NULL; ++command)
        pvk_printf("  %-8s %s\n", command->name, command->help);
    return true;
}

/* Splits "name arguments" and runs the command; false once it was halt. */
static bool run_command(char *line)
{
    while (*line == ' ' || *line == '\t')
        ++line;
    if (*line == '\0')
        return true;
    char *arguments = line;
    while (*arguments != '\0' && *arguments != ' ' && *arguments != '\t')
        ++arguments;
    if (*arguments != '\0')
        *arguments++ = '\0';
    while (*arguments == ' ' || *arguments == '\t')
        ++arguments;
    for (const struct command *command = commands; command->name != NULL; ++command) {
        const char *a = command->name, *b = line;
        while (*a != '\0' && *a == *b)
            ++a, ++b;
        if (*a == '\0' && *b == '\0')
            return command->run(arguments);
    }
    pvk_printf("unknown command '%.20s' (try 'help')\n", line);
    return true;
}

int shell_init(void)
{
    history = page_get();
    if (history == NULL)
        return -1;
    history->count = 0;
    return 0;
}

void shell_run(void)
{
    struct line_editor editor = {0};
    for (;;) {
        pvk_printf("tinyos>\n");
        read_line(&editor);
        if (editor.too_long) {
            pvk_printf("line too long: at most %d characters, ignored\n", LINE_CAPACITY - 1);
            continue;
        }
        if (editor.unprintable != 0)
            pvk_printf("(%lu control characters dropped)\n", (unsigned long)editor.unprintable);
        pvk_printf("> %s\n", editor.text);
        if (editor.length != 0)
            remember(editor.text);
        if (!run_command(editor.text))
            return;
    }
}
