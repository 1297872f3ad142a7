/*
 * A cooperative scheduler: periodic tasks, each run from the idle loop once its tick has come.
 * Tasks never preempt each other or the shell; one that runs long only makes the others late,
 * which `tasks` shows. Task descriptors come from kmalloc.
 */
#include "kernel.h"

struct task {
    const char *name;
    uint32_t period_ticks;
    uint64_t due_tick;
    uint64_t runs;
    uint64_t worst_lateness; /* in ticks: how long after its due tick a run started, at worst */
    task_function run;
    void *context;
    struct task *next;
};

static struct task *first_task;
static uint64_t seconds_alive;
static uint64_t lost_ticks;

int task_spawn(const char *name, uint32_t period_ticks, task_function run, void *context)
{
    struct task *task = kmalloc(sizeof *task);
    if (task == NULL || period_ticks == 0) {
        kfree(task);
        return -1;
    }
    *task = (struct task){.name = name, .period_ticks = period_ticks, .run = run, .context = context,
                          .due_tick = timer_ticks() + period_ticks};
    struct task **link = &first_task; /* at the end: tasks run in the order they were spawned */
    while (*link != NULL)
        link = &(*link)->next;
    *link = task;
    return 0;
}

void tasks_run_due(void)
{
    for (struct task *task = first_task; task != NULL; task = task->next) {
        const uint64_t now = timer_ticks();
        if (now < task->due_tick)
            continue;
        if (now - task->due_tick > task->worst_lateness)
            task->worst_lateness = now - task->due_tick;
        task->run(task->context);
        ++task->runs;
        task->due_tick += task->period_ticks;
        if (task->due_tick <= now) /* missed whole periods are skipped, not run in a burst */
            task->due_tick = now + task->period_ticks;
    }
}

void tasks_print(void)
{
    pvk_printf("%-10s %8s %8s %10s\n", "task", "period", "runs", "worst late");
    for (const struct task *task = first_task; task != NULL; task = task->next)
        pvk_printf("%-10s %5u ms %8lu %7lu ms\n", task->name, (unsigned)(task->period_ticks * 1000 / TICK_HZ),
                   (unsigned long)task->runs, (unsigned long)(task->worst_lateness * 1000 / TICK_HZ));
}

/* heartbeat: counts the seconds tinyos has been up, by ticks. */
static void heartbeat(void *context)
{
    (void)context;
    ++seconds_alive;
}

/* clockcheck: ticks are timer events handled, and periods missed while the domain did not run
 * are not made up for; the pvclock says how many periods really passed. */
static void clockcheck(void *context)
{
    (void)context;
    const uint64_t periods = (pvk_monotonic_ns() - timer_started_ns()) / TICK_NS;
    const uint64_t ticks = timer_ticks();
    lost_ticks = periods > ticks ? periods - ticks : 0;
}

uint64_t tasks_lost_ticks(void)
{
    return lost_ticks;
}

uint64_t tasks_heartbeats(void)
{
    return seconds_alive;
}

int tasks_init(void)
{
    if (task_spawn("heartbeat", TICK_HZ, heartbeat, NULL) != 0 ||
        task_spawn("clockcheck", TICK_HZ / 2, clockcheck, NULL) != 0)
        return -1;
    return 0;
}
