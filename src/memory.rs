//! Handing freed memory back to the operating system after a sync.
//!
//! A sync of thousands of objects allocates tens of megabytes (the rendered trees, the live
//! metadata, the request bodies) and frees them all when it ends. glibc's allocator keeps what
//! was freed in its per-thread arenas for reuse, so the agent's resident memory stays at the
//! peak of its largest sync for as long as it runs, and the next sync (an unchanged re-sync
//! of the same set) adds its own peak on top. `malloc_trim` returns the free pages of every
//! arena: the agent idles at what it really holds.
//!
//! glibc also gives each thread that allocates under contention an arena of its own (up to
//! eight per core), and each arena keeps its own high-water mark. A sync allocates on several
//! threads at once (the runtime's workers read the responses and run the engine's steps), so the process's peak is the sum of the arenas' peaks rather than the peak of
//! what is live. [`limit_arenas`] keeps one arena, which lowered the agent's peak at the same
//! speed (the figures: docs/benchmarks.md, "memory at thousands of objects").
//!
//! These are the crate's only `unsafe` code: calls into the C library that take no pointers.
#![allow(unsafe_code)]

/// Environment variable with which glibc reads its arena limit; when set, it wins.
const ARENA_MAX_VAR: &str = "MALLOC_ARENA_MAX";

/// Bounds glibc's malloc to one arena, unless `MALLOC_ARENA_MAX` sets the bound. Call it first
/// thing in `main`, before any other thread starts; a no-op where the allocator is not glibc's.
pub fn limit_arenas() {
    if std::env::var_os(ARENA_MAX_VAR).is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` changes a setting of glibc's allocator under its own lock; it takes no
    // pointer and is safe to call from any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the free memory of every malloc arena to the operating system. Costs a walk of the
/// allocator's free lists (well under a millisecond for an agent's heap); a no-op where the
/// allocator is not glibc's.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` reads and changes only glibc's own bookkeeping, under each arena's
    // lock; it takes no pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
