//! A one-way latch shared by everything that can end the plugin: the
//! controller's Shutdown RPC, SIGTERM, and the embedding code.

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, _) = watch::channel(false);
        Shutdown { sender: std::sync::Arc::new(sender) }
    }

    /// Starts a graceful shutdown; idempotent.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once `trigger` has been called (immediately if it was).
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        // Err means the sender is gone, which cannot happen while `self`
        // holds it; either way there is nothing left to wait for.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }

    /// `wait` for places that need a `'static` future.
    pub async fn wait_owned(self) {
        self.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_returns_after_trigger_even_if_triggered_first() {
        let shutdown = Shutdown::new();
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.wait().await }
        });
        shutdown.trigger();
        assert!(waiter.await.is_ok());
        assert!(shutdown.is_triggered());
        shutdown.wait().await;
    }
}
