//! Placeholder server of the skeleton commit; the broker branch replaces it.
use crate::broker::BrokerConfig;
use std::net::SocketAddr;
/// A bound broker.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
}
impl Server {
    /// Bind the listener.
    pub async fn bind(config: BrokerConfig) -> std::io::Result<Server> {
        Ok(Server {
            listener: tokio::net::TcpListener::bind(config.amqp_addr).await?,
        })
    }
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }
    /// Run until shutdown.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await
    }
}
