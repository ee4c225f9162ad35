//! A subscriptions file read again while the server runs (SIGHUP): checked
//! like at start, and handed to the running reconciler only if it passes, so
//! a broken file leaves the old one in force.

use tokio::sync::mpsc;

use super::configuration::Configuration;
use super::reconciler::Reconciler;

impl Reconciler {
    /// Where new configurations for this reconciler go; it takes them
    /// between two Graph calls; one waits at most.
    pub fn configurations(&mut self) -> mpsc::Sender<Configuration> {
        let (sender, receiver) = mpsc::channel(1);
        self.configurations = Some(receiver);
        sender
    }

    /// Puts `configuration` in force: entries that left the file are deleted
    /// and new ones created at the next pass, which starts at once.
    pub fn reconfigure(&mut self, configuration: Configuration) {
        let Configuration { plan, graph, derived } = configuration;
        self.plan = plan;
        self.graph = graph;
        self.apply(derived);
        // Entries waiting out a failure of the old definition try again now.
        self.retry_at.clear();
        self.next_verify_ms = 0;
        self.publish_directory();
        tracing::info!(entries = self.plan.subscriptions.len(), "subscriptions file reloaded");
    }

    /// The next reloaded configuration; never resolves when nobody reloads.
    pub(crate) async fn next_configuration(
        configurations: &mut Option<mpsc::Receiver<Configuration>>,
    ) -> Configuration {
        match configurations {
            Some(receiver) => match receiver.recv().await {
                Some(configuration) => configuration,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}
