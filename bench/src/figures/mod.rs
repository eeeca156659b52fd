//! The six figures of the performance issue, the bounded-memory figure of the trust issue and
//! the plugins' figure, one module each. Every figure builds its own
//! isolated world, measures, tears it down, and returns a [`Section`].

mod bounds;
mod cold_start;
mod latency;
mod memory;
mod plugins;
mod reload;
mod scale;
mod throughput;

use std::time::Duration;

use anyhow::Result;

use crate::report::Section;
use crate::world::World;
use crate::{Ctx, Figure};

/// The id (`--only`) and the title of a figure.
pub fn describe(figure: Figure) -> (&'static str, &'static str) {
    match figure {
        Figure::Latency => ("latency", "1. Added latency per tools/call"),
        Figure::Throughput => ("throughput", "2. Throughput, sessions sharing one backend"),
        Figure::ColdStart => ("cold-start", "3. Cold start, warm schema cache"),
        Figure::Memory => ("memory", "4. Memory"),
        Figure::Reload => ("reload", "5. Reload under load"),
        Figure::Scale => ("scale", "6. Scale: many backends, many tools"),
        Figure::Bounds => ("bounds", "7. Bounded memory under abuse"),
        Figure::Plugins => (
            "plugins",
            "8. A tool of one's own: plugin, Rust and backend calls",
        ),
    }
}

pub async fn run(figure: Figure, ctx: &Ctx) -> Result<Section> {
    let (id, title) = describe(figure);
    let mut section = Section::new(id, title);
    match figure {
        Figure::Latency => latency::run(ctx, &mut section).await?,
        Figure::Throughput => throughput::run(ctx, &mut section).await?,
        Figure::ColdStart => cold_start::run(ctx, &mut section).await?,
        Figure::Memory => memory::run(ctx, &mut section).await?,
        Figure::Reload => reload::run(ctx, &mut section).await?,
        Figure::Scale => scale::run(ctx, &mut section).await?,
        Figure::Bounds => bounds::run(ctx, &mut section).await?,
        Figure::Plugins => plugins::run(ctx, &mut section).await?,
    }
    Ok(section)
}

/// The config of a gateway with one fixture server `fx` that never idles out.
fn one_fixture_config(world: &World, extra: &[&str]) -> String {
    format!(
        "idle_timeout: 0\nservers:\n{}",
        world.fixture_server("fx", extra)
    )
}

/// Waits until `cond` holds, polling, or fails after `deadline`.
async fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let start = std::time::Instant::now();
    while !cond() {
        if start.elapsed() > deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
