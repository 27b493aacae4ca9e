//! `hearth-bench events`: asynchronous invocations. Acceptance throughput at concurrency 32
//! (each `202` after a synced commit), against synchronous invocations of the same function
//! through the same route; and the delivery latency of an idle queue (accepted to finished,
//! by the server's clock), against a warm synchronous invocation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hearth_agent::ProcessDriver;
use hearth_types::EventStatus;

use crate::harness::{BENCH_MEMORY_MB, Bench, PYTHON, ServerSetup};
use crate::{Figure, figure, percentile};

#[derive(clap::Args)]
pub struct EventArgs {
    /// Events accepted in the throughput run.
    #[arg(long, default_value_t = 4000)]
    pub events: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Events whose delivery latency is measured, one at a time.
    #[arg(long, default_value_t = 200)]
    pub latency_events: usize,
}

/// `total` calls of `call` from `concurrency` tasks: each call's latency, and calls per second.
async fn drive<F, Fut, T>(total: usize, concurrency: usize, call: F) -> Result<(Vec<Duration>, f64, Vec<T>)>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T>> + Send,
    T: Send + 'static,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(total / concurrency);
                for _ in 0..total / concurrency {
                    let t = Instant::now();
                    let v = call().await?;
                    out.push((t.elapsed(), v));
                }
                anyhow::Ok(out)
            })
        })
        .collect();
    let (mut times, mut values) = (vec![], vec![]);
    for t in tasks {
        for (d, v) in t.await?? {
            times.push(d);
            values.push(v);
        }
    }
    let rate = times.len() as f64 / started.elapsed().as_secs_f64();
    Ok((times, rate, values))
}

/// Waits until every event in `ids` finished; fails on any that did not succeed.
async fn wait_all(bench: &Bench, ids: &[String]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    for id in ids {
        loop {
            let e = bench.client.get_invocation(id).await?;
            match e.status {
                EventStatus::Succeeded => break,
                s if s.is_final() => bail!("event {id} ended {s}: {:?}", e.error),
                _ if Instant::now() > deadline => bail!("event {id} still {} after 10 minutes", e.status),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    Ok(())
}

pub async fn figures(args: &EventArgs) -> Result<Vec<Figure>> {
    let bench = Bench::start(ServerSetup::new(ProcessDriver::detect(), None)).await?;
    bench.deploy("echo", PYTHON, BENCH_MEMORY_MB, 4).await?;
    let patch = serde_json::json!({"max_queued_events": 100_000});
    bench.client.patch_function("echo", &patch).await?;
    let c = args.concurrency;
    let mut figures = vec![];

    eprintln!("synchronous invocations: {} at concurrency {c}", args.events);
    let client = bench.client.clone();
    let sync_call = move || {
        let client = client.clone();
        async move {
            let r = client.invoke("echo", b"{}".to_vec(), None).await?;
            if r.function_error.is_some() {
                bail!("the function failed");
            }
            anyhow::Ok(())
        }
    };
    drive(c * 4, c, sync_call.clone()).await?; // instances and connections warm
    let (mut sync_times, sync_rate, _) = drive(args.events, c, sync_call.clone()).await?;

    eprintln!("asynchronous acceptance: {} at concurrency {c}", args.events);
    let client = bench.client.clone();
    let accept = move || {
        let client = client.clone();
        async move { anyhow::Ok(client.invoke_async("echo", b"{}".to_vec(), None).await?.request_id) }
    };
    let (mut accept_times, accept_rate, ids) = drive(args.events, c, accept).await?;
    figures.push(figure("events.accept.c32", accept_rate, "events/s", "synchronous invocations at c32", sync_rate));
    let (p50, base) = (percentile(&mut accept_times, 0.5), percentile(&mut sync_times, 0.5));
    figures.push(figure("events.accept.c32.p50", p50, "ms", "a synchronous invocation at c32", base));
    eprintln!("waiting for the {} events to be delivered", ids.len());
    let drained = Instant::now();
    wait_all(&bench, &ids).await?;
    eprintln!("delivered in {:.1} s after the last was accepted", drained.elapsed().as_secs_f64());

    eprintln!("delivery latency of an idle queue: {} events, one at a time", args.latency_events);
    let (mut delivered, mut warm) = (vec![], vec![]);
    for _ in 0..args.latency_events {
        let t = Instant::now();
        bench.client.invoke("echo", b"{}".to_vec(), None).await?;
        warm.push(t.elapsed());
        let id = bench.client.invoke_async("echo", b"{}".to_vec(), None).await?.request_id;
        wait_all(&bench, std::slice::from_ref(&id)).await?;
        let e = bench.client.get_invocation(&id).await?;
        let finished = e.finished_at.unwrap_or(e.enqueued_at);
        delivered.push((finished - e.enqueued_at).to_std().unwrap_or_default());
    }
    for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
        let (v, b) = (percentile(&mut delivered, p), percentile(&mut warm, p));
        figures.push(figure(&format!("events.delivery.idle.{label}"), v, "ms", "a warm synchronous invocation", b));
    }
    Ok(figures)
}
