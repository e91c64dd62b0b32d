//! CloudWatch both ways: GetMetricData for the series a policy's configuration names, and
//! PutMetricData of Ballast's own figures when `publish-metrics` is on.

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, StandardUnit};
use aws_smithy_types::DateTime;

use super::{AwsCapacity, aws_error};
use ballast_engine::ports::{AdapterResult, MetricPoint, MetricQuery};

/// Ballast's figures for one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub pending_pods: u32,
    pub decisions: u32,
    pub cost_per_hour: f64,
}

impl AwsCapacity {
    /// The query's statistic of a series per period, oldest first.
    pub(super) async fn metric(&self, query: &MetricQuery) -> AdapterResult<Vec<MetricPoint>> {
        let operation = format!("read metric {}/{}", query.namespace, query.name);
        let dimensions: Vec<Dimension> =
            query.dimensions.iter().map(|(k, v)| Dimension::builder().name(k).value(v).build()).collect();
        let metric = Metric::builder()
            .namespace(&query.namespace)
            .metric_name(&query.name)
            .set_dimensions(Some(dimensions))
            .build();
        let stat = MetricStat::builder()
            .metric(metric)
            .period(query.period_seconds.max(1) as i32)
            .stat(&query.statistic)
            .build();
        let mut points = Vec::new();
        let mut pages = self
            .inner
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(MetricDataQuery::builder().id("q0").metric_stat(stat).return_data(true).build())
            .start_time(DateTime::from_millis(query.start_millis as i64))
            .end_time(DateTime::from_millis(query.end_millis as i64))
            .into_paginator()
            .send();
        loop {
            self.inner.limit.acquire().await;
            let Some(page) = pages.next().await else { break };
            let page = page.map_err(|e| aws_error(operation.clone(), e))?;
            for result in page.metric_data_results() {
                for (at, value) in result.timestamps().iter().zip(result.values()) {
                    let at = at.to_millis().unwrap_or(0).max(0) as u64;
                    points.push(MetricPoint { at_millis: at, value: *value });
                }
            }
        }
        points.sort_by_key(|p| p.at_millis);
        Ok(points)
    }

    /// Publishes the figures under `metrics-namespace`, dimensioned by cluster. Does nothing
    /// unless `publish-metrics` is on.
    pub async fn publish(&self, figures: Figures, at_millis: u64) -> AdapterResult<()> {
        let settings = &self.inner.settings;
        if !settings.publish_metrics {
            return Ok(());
        }
        let cluster = Dimension::builder().name("ClusterName").value(&settings.cluster_name).build();
        let at = DateTime::from_millis(at_millis as i64);
        let datum = |name: &str, value: f64, unit: StandardUnit| {
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(cluster.clone())
                .value(value)
                .unit(unit)
                .timestamp(at)
                .build()
        };
        self.inner.limit.acquire().await;
        self.inner
            .cloudwatch
            .put_metric_data()
            .namespace(&settings.metrics_namespace)
            .metric_data(datum("PendingPods", f64::from(figures.pending_pods), StandardUnit::Count))
            .metric_data(datum("Decisions", f64::from(figures.decisions), StandardUnit::Count))
            .metric_data(datum("CostPerHour", figures.cost_per_hour, StandardUnit::None))
            .send()
            .await
            .map_err(|e| aws_error("publish Ballast's figures to CloudWatch", e))?;
        Ok(())
    }
}
