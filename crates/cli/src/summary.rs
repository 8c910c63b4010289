//! The end-of-run summary.

use iotflow_pipelines::config::JobConfig;
use iotflow_pipelines::run::RunReport;

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn print_text(r: &RunReport, cfg: &JobConfig) {
    let t = &r.tally;
    if r.process != 0 {
        println!(
            "process {} of {} done in {:.2}s (totals are reported by process 0)",
            r.process, r.processes, r.seconds
        );
        return;
    }
    let rate = if r.seconds > 0.0 {
        t.lines as f64 / r.seconds
    } else {
        0.0
    };
    println!("lines      {:>14}", thousands(t.lines));
    println!("valid      {:>14}", thousands(t.valid));
    println!("rejected   {:>14}", thousands(t.rejected_total()));
    for (reason, n) in &t.rejected {
        println!("  {reason:<14}{:>9}", thousands(*n));
    }
    println!("late       {:>14}", thousands(t.late));
    println!(
        "windows    {:>14}   ({} readings, {})",
        thousands(t.windows),
        thousands(t.windowed),
        cfg.window.describe()
    );
    if t.window_updates > 0 {
        println!(
            "  updates  {:>14}   (late readings within the allowed lateness)",
            thousands(t.window_updates)
        );
    }
    if t.window_partials > 0 {
        println!(
            "  partials {:>14}   (early results)",
            thousands(t.window_partials)
        );
    }
    println!("alerts     {:>14}", thousands(t.alerts));
    println!(
        "time       {:>13.2}s   {} lines/s",
        r.seconds,
        thousands(rate as u64)
    );
    println!(
        "workers    {:>14}   × {} process(es)",
        r.workers, r.processes
    );
    println!("peak RSS   {:>11} MiB", r.peak_rss_bytes >> 20);
    if let Some(c) = &r.checkpoints {
        if r.already_complete {
            println!(
                "already complete: checkpoint {} says this job ran to its end (delete the checkpoint directory to run it again)",
                c.restored_from.unwrap_or_default()
            );
        } else {
            let from = c
                .restored_from
                .map_or_else(|| "start".to_owned(), |id| format!("checkpoint {id}"));
            println!(
                "checkpoints {:>13}   from {from}; last {} KiB in {} ms (max {} ms)",
                c.completed,
                c.last_state_bytes >> 10,
                c.last_ms,
                c.max_ms
            );
        }
    }
    if r.interrupted {
        if r.checkpoints.is_some() {
            println!(
                "INTERRUPTED: stopped early; output is committed up to the last checkpoint; rerun the same command to resume"
            );
        } else {
            println!("INTERRUPTED: stopped early; everything read was processed and written");
        }
    }
    if let Err(e) = t.check_conservation(true) {
        println!("WARNING: counts not conserved: {e}");
    }
}
