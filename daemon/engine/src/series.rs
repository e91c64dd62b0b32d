//! CloudWatch series as policy input. A policy's configuration names queries
//! (`policies[].metrics`); [`feed`] runs each on its own schedule, outside the tick, through
//! the capacity side's [`Capacity::query_metric`], and keeps the latest reading in a
//! [`SeriesStore`]; each tick's snapshot offers what the store holds (`snapshot.metrics`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ballast_sdk::{MetricPoint, MetricSeries};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::ports::{Capacity, Clock, MetricQuery};

/// CloudWatch's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Statistic {
    #[default]
    Average,
    Sum,
    Minimum,
    Maximum,
    SampleCount,
}

impl Statistic {
    /// As GetMetricData names it.
    pub fn as_cloudwatch(self) -> &'static str {
        match self {
            Statistic::Average => "Average",
            Statistic::Sum => "Sum",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
            Statistic::SampleCount => "SampleCount",
        }
    }
}

/// One query a policy's configuration names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SeriesQuery {
    /// What the plugin asks for (`snapshot.metric(name)`); unique across the configuration.
    pub name: String,
    /// E.g. `AWS/SQS`.
    pub namespace: String,
    /// E.g. `ApproximateNumberOfMessagesVisible`.
    pub metric: String,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    #[serde(default)]
    pub statistic: Statistic,
    /// One point per period: 1, 5, 10 or 30 s (high resolution), or a multiple of 60 s.
    #[serde(default = "minute", with = "crate::duration")]
    pub period: Duration,
    /// How far back each read looks.
    #[serde(default = "five_minutes", with = "crate::duration")]
    pub window: Duration,
    /// How often it is read.
    #[serde(default = "minute", with = "crate::duration")]
    pub every: Duration,
}

fn minute() -> Duration {
    Duration::from_secs(60)
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

impl SeriesQuery {
    /// Errors name the field and the value.
    pub fn validate(&self) -> Result<(), String> {
        let period = self.period.as_secs();
        if self.period.subsec_nanos() != 0
            || !(matches!(period, 1 | 5 | 10 | 30) || (period > 0 && period.is_multiple_of(60)))
        {
            return Err(format!(
                "period: CloudWatch takes 1s, 5s, 10s, 30s or a multiple of 60s, not {:?}",
                self.period
            ));
        }
        if self.window < self.period {
            return Err(format!("window: {:?} is shorter than the period {:?}", self.window, self.period));
        }
        if self.every < Duration::from_secs(1) {
            return Err(format!("every: at least 1s, not {:?}", self.every));
        }
        for (field, value) in [("name", &self.name), ("namespace", &self.namespace), ("metric", &self.metric)] {
            if value.trim().is_empty() {
                return Err(format!("{field}: required, got '{value}'"));
            }
        }
        Ok(())
    }
}

/// Checks every query of a configuration: each valid, names unique across policies.
///
/// # Errors
/// The first problem, as `policies[i].metrics[j].field: ...`.
pub fn validate_all<'a>(queries: impl Iterator<Item = (usize, &'a [SeriesQuery])>) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for (i, list) in queries {
        for (j, q) in list.iter().enumerate() {
            q.validate().map_err(|e| format!("policies[{i}].metrics[{j}].{e}"))?;
            if !names.insert(q.name.clone()) {
                return Err(format!("policies[{i}].metrics[{j}].name: '{}' is used twice", q.name));
            }
        }
    }
    Ok(())
}

/// The latest reading of each series, shared by the feed and the engine.
#[derive(Clone, Default)]
pub struct SeriesStore(Arc<RwLock<BTreeMap<String, MetricSeries>>>);

impl SeriesStore {
    /// Every series, by name; a series not read yet is there with no points.
    pub fn latest(&self) -> Vec<MetricSeries> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    fn set(&self, series: MetricSeries) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(series.name.clone(), series);
    }

    fn get(&self, name: &str) -> Option<MetricSeries> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Makes the store hold the series of `now`: a query that is in `before` as it is keeps
    /// its points; a new or changed one starts with none; one no longer asked for goes.
    fn follow(&self, before: &[SeriesQuery], now: &[SeriesQuery]) {
        let mut series = self.0.write().unwrap_or_else(|p| p.into_inner());
        series.retain(|name, _| now.iter().any(|q| &q.name == name));
        for query in now.iter().filter(|q| !before.contains(q)) {
            series.insert(query.name.clone(), MetricSeries { name: query.name.clone(), ..Default::default() });
        }
    }
}

/// Reads every query on its own schedule until `stop`, following `queries` as a reload
/// changes them.
///
/// # Guarantees
/// Never on the tick's path: a slow or failing CloudWatch delays only its own series. A read
/// that fails keeps the previous points and sets `error`. When the queries change, the
/// series of a query that did not change keep their points and schedule is restarted; a
/// series no longer asked for is gone from the store before the next tick can read it.
pub async fn feed<P, K>(
    capacity: P,
    clock: K,
    mut queries: watch::Receiver<Vec<SeriesQuery>>,
    store: SeriesStore,
    mut stop: watch::Receiver<bool>,
) where
    P: Capacity + Clone + 'static,
    K: Clock + Clone + 'static,
{
    let mut before: Vec<SeriesQuery> = Vec::new();
    loop {
        let now = queries.borrow_and_update().clone();
        store.follow(&before, &now);
        let readers: Vec<_> =
            now.iter().map(|q| spawn_reader(capacity.clone(), clock.clone(), q.clone(), store.clone())).collect();
        before = now;
        let changed = tokio::select! {
            changed = queries.changed() => changed.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        };
        if !changed {
            // Stopped, or nobody can change the queries any more: read on until stopped.
            let _ = stop.wait_for(|s| *s).await;
        }
        readers.iter().for_each(|r| r.abort());
        if !changed {
            return;
        }
    }
}

/// Reads `query` every `query.every`, the first time at once, until aborted.
fn spawn_reader<P, K>(capacity: P, clock: K, query: SeriesQuery, store: SeriesStore) -> tokio::task::JoinHandle<()>
where
    P: Capacity + Clone + 'static,
    K: Clock + Clone + 'static,
{
    tokio::spawn(async move {
        let mut every = tokio::time::interval(query.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            read(&capacity, &query, &store, clock.now_millis()).await;
        }
    })
}

async fn read<P: Capacity>(capacity: &P, query: &SeriesQuery, store: &SeriesStore, now: u64) {
    let request = MetricQuery {
        namespace: query.namespace.clone(),
        name: query.metric.clone(),
        dimensions: query.dimensions.clone(),
        statistic: query.statistic.as_cloudwatch().into(),
        period_seconds: query.period.as_secs() as u32,
        start_millis: now.saturating_sub(query.window.as_millis() as u64),
        end_millis: now,
    };
    let series = match capacity.query_metric(&request).await {
        Ok(points) => MetricSeries {
            name: query.name.clone(),
            points: points.iter().map(|p| MetricPoint { at_millis: p.at_millis, value: p.value }).collect(),
            read_at_millis: now,
            error: None,
        },
        Err(error) => {
            tracing::warn!(series = %query.name, %error, "could not read a CloudWatch series");
            let previous = store.get(&query.name).unwrap_or_default();
            MetricSeries { name: query.name.clone(), error: Some(error.to_string()), ..previous }
        }
    };
    store.set(series);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str) -> SeriesQuery {
        serde_yaml::from_str(&format!("{{name: {name}, namespace: AWS/SQS, metric: Depth}}")).unwrap()
    }

    #[test]
    fn defaults_and_checks_name_the_field() {
        let q = query("depth");
        assert_eq!(
            (q.period, q.window, q.every, q.statistic),
            (minute(), five_minutes(), minute(), Statistic::Average)
        );
        let bad = SeriesQuery { period: Duration::from_secs(90), ..query("depth") };
        let error = validate_all([(0, std::slice::from_ref(&bad))].into_iter()).unwrap_err();
        assert!(error.starts_with("policies[0].metrics[0].period:") && error.contains("90s"), "{error}");
        let twice = [query("depth"), query("depth")];
        let error = validate_all([(1, &twice[..])].into_iter()).unwrap_err();
        assert_eq!(error, "policies[1].metrics[1].name: 'depth' is used twice");
    }

    #[derive(Clone)]
    struct Fixed(u64);

    impl Clock for Fixed {
        fn now_millis(&self) -> u64 {
            self.0
        }
    }

    fn read_names(store: &SeriesStore) -> Vec<(String, u64)> {
        store.latest().into_iter().map(|s| (s.name, s.read_at_millis)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_feed_follows_its_queries_as_a_reload_changes_them() {
        let (queries, followed) = watch::channel(vec![query("age"), query("depth")]);
        let (stop, stopped) = watch::channel(false);
        let store = SeriesStore::default();
        let capacity = crate::tests::Faulty::default();
        let feed = tokio::spawn(feed(capacity, Fixed(7), followed, store.clone(), stopped));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(read_names(&store), [("age".into(), 7), ("depth".into(), 7)]);

        // `depth` goes, `backlog` comes and is read at once, `age` keeps its points.
        queries.send_replace(vec![query("age"), query("backlog")]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(read_names(&store), [("age".into(), 7), ("backlog".into(), 7)]);

        queries.send_replace(Vec::new());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(store.latest().is_empty(), "{:?}", read_names(&store));
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), feed).await.expect("the feed stops").unwrap();
    }
}
