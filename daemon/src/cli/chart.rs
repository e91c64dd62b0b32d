//! The simulation chart, as SVG or PNG by the file's extension. Above: demand and capacity
//! (vCPU, left axis) and pending pods (right axis) over simulated time. Below: what each
//! policy set spends per hour against the lower bound's rate, the cost no policy can beat
//! (see `sim::bound`). With several policy sets, one line of each kind per set over the
//! shared demand and bound.

use std::path::Path;

use anyhow::{Context, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::sim::meter::Sample;

/// DejaVu Sans (see `assets/DejaVuSans.LICENSE`), embedded so charts render the same on a
/// machine with no fonts installed.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

const COLOURS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// One line set to draw: a policy set's name and its series.
pub struct Run<'a> {
    pub label: &'a str,
    pub series: &'a [Sample],
}

pub fn draw(path: &Path, title: &str, runs: &[Run<'_>]) -> anyhow::Result<()> {
    if runs.is_empty() {
        bail!("nothing to chart");
    }
    // Registering twice is harmless; the first registration wins.
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let size = (1200, 950);
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            plot(&root, title, runs)?;
            root.present().with_context(|| format!("cannot write {}", path.display()))?;
        }
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            plot(&root, title, runs)?;
            root.present().with_context(|| format!("cannot write {}", path.display()))?;
        }
        _ => bail!("--chart {}: the file must end in .svg or .png", path.display()),
    }
    Ok(())
}

fn hours(s: &Sample) -> f64 {
    s.minute / 60.0
}

fn plot<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, runs: &[Run<'_>]) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing the chart: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(err)?;
    let (upper, lower) = root.split_vertically(600);
    let end = runs.iter().flat_map(|r| r.series.last()).map(hours).fold(0.0, f64::max).max(0.1);
    plot_capacity(&upper, end, runs)?;
    plot_cost(&lower, end, runs)
}

/// Demand, each set's capacity and its pending pods.
fn plot_capacity<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, end: f64, runs: &[Run<'_>]) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing the chart: {e:?}");
    let vcpu_max = runs
        .iter()
        .flat_map(|r| r.series.iter())
        .map(|s| s.demand_vcpu.max(s.capacity_vcpu))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let pending_max =
        runs.iter().flat_map(|r| r.series.iter()).map(|s| s.pending_pods as f64).fold(0.0, f64::max).max(1.0) * 1.1;

    let mut chart = ChartBuilder::on(root)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..vcpu_max)
        .map_err(err)?
        .set_secondary_coord(0.0..end, 0.0..pending_max);
    chart
        .configure_mesh()
        .x_desc("simulated time (hours)")
        .y_desc("vCPU")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    chart
        .configure_secondary_axes()
        .y_desc("pending pods")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;

    let demand = runs[0].series.iter().map(|s| (hours(s), s.demand_vcpu));
    chart
        .draw_series(AreaSeries::new(demand, 0.0, RGBColor(200, 200, 200).mix(0.5)).border_style(BLACK.stroke_width(1)))
        .map_err(err)?
        .label("demand: vCPU requested by pods")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], RGBColor(200, 200, 200).filled()));

    let several = runs.len() > 1;
    for (i, run) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let name = |what: &str| if several { format!("{}: {what}", run.label) } else { what.to_string() };
        chart
            .draw_series(LineSeries::new(
                run.series.iter().map(|s| (hours(s), s.capacity_vcpu)),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(name("capacity: vCPU allocatable on Ready nodes"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        let pending_colour = if several { colour } else { RGBColor(214, 39, 40) };
        chart
            .draw_secondary_series(DashedLineSeries::new(
                run.series.iter().map(|s| (hours(s), s.pending_pods as f64)),
                6,
                4,
                pending_colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(name("pending pods (right axis)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], pending_colour.stroke_width(1)));
    }
    legend(&mut *chart).map_err(err)
}

/// Each set's cost per hour, and the lower bound's (the same for every set: it charges the
/// demand, not what a policy did with it).
fn plot_cost<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, end: f64, runs: &[Run<'_>]) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing the chart: {e:?}");
    let top = runs
        .iter()
        .flat_map(|r| r.series.iter())
        .map(|s| s.cost_per_hour.max(s.lower_bound_per_hour))
        .fold(0.0, f64::max)
        .max(0.01)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("simulated time (hours)")
        .y_desc("cost ($/h)")
        .y_label_formatter(&|v| format!("${v:.2}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    let several = runs.len() > 1;
    for (i, run) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let label = if several { format!("{}: cost per hour", run.label) } else { "cost per hour".to_string() };
        chart
            .draw_series(LineSeries::new(
                run.series.iter().map(|s| (hours(s), s.cost_per_hour)),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .draw_series(DashedLineSeries::new(
            runs[0].series.iter().map(|s| (hours(s), s.lower_bound_per_hour)),
            6,
            4,
            BLACK.stroke_width(2),
        ))
        .map_err(err)?
        .label("lower bound: no policy can cost less")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    legend(&mut chart).map_err(err)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}
