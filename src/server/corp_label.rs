//! The `corp` label on every metric: a recorder layer that adds the label of the corp whose
//! work records the metric.
//!
//! Metrics are recorded all over the program with the `metrics` macros, which know nothing of
//! corps. Each corp's work runs in [`scope`], which sets a task-local corp name; this layer,
//! installed in front of the Prometheus recorder, adds `corp="NAME"` to every key registered
//! within it. The corp of a single-corp config is `default`, so dashboards and rules select
//! by `corp` whatever the config.

use std::future::Future;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};

use crate::corp::CorpName;

tokio::task_local! {
    static CORP: CorpName;
}

/// Runs `work` as `corp`'s: its metrics carry `corp="NAME"`, its log lines a `corp` field.
pub(crate) async fn scope<F: Future>(corp: CorpName, work: F) -> F::Output {
    use tracing::Instrument as _;
    let span = tracing::info_span!("corp", corp = %corp);
    CORP.scope(corp, work.instrument(span)).await
}

/// Adds the current corp's label to every key, then hands it to the recorder behind.
pub(crate) struct CorpLabel<R>(pub R);

fn labelled(key: &Key) -> Key {
    match CORP.try_with(|corp| Label::new("corp", corp.to_string())) {
        Ok(label) => key.with_extra_labels(vec![label]),
        Err(_) => key.clone(),
    }
}

impl<R: Recorder> Recorder for CorpLabel<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(&labelled(key), metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(&labelled(key), metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(&labelled(key), metadata)
    }
}
