//! Spawn latency through the jail: `true`, and a small script that writes and reads a
//! file, each run a few hundred times; prints p50/p99. Numbers for notes, never asserted.
//!
//! `cargo bench -p pincer-jail --bench spawn [-- --runs N]`
//!
//! The bench binary is its own helper (`/proc/self/exe`), exactly like `pincer`.

use std::time::{Duration, Instant};

use pincer_jail::{ExitStatus, Jail, JailProfile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pincer_jail::run_helper_if_requested();
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(300usize);

    let host = pincer_jail::HostSupport::probe();
    println!(
        "jail spawn bench: kernel {} ({}), {} CPUs, uid {}, Landlock {:?}, {} runs each",
        host.kernel,
        host.arch,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        host.euid,
        host.landlock,
        runs
    );
    let jail = Jail::current_exe();
    let cases = [
        ("true", JailProfile::builder(["true"]).build()?),
        (
            "sh: write+read a file",
            JailProfile::builder(["/bin/sh", "-c", "echo hi > f && cat f >/dev/null"]).build()?,
        ),
    ];
    for (name, profile) in &cases {
        for _ in 0..10 {
            jail.run(profile)?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let outcome = jail.run(profile)?;
            times.push(started.elapsed());
            if outcome.status != ExitStatus::Exited(0) {
                return Err(format!("{name}: {:?}", outcome.status).into());
            }
        }
        times.sort_unstable();
        let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
        let mean = times.iter().sum::<Duration>() / u32::try_from(times.len())?;
        println!(
            "  {name:<24} p50 {:>8.2} ms   p99 {:>8.2} ms   mean {:>8.2} ms   min {:>8.2} ms",
            ms(pct(50)),
            ms(pct(99)),
            ms(mean),
            ms(times[0])
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
