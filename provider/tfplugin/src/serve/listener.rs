//! Where the plugin listens: a unix socket in a fresh private directory
//! (what go-plugin prefers), or loopback TCP when a socket cannot be made.
//! Accepted connections go through the TLS handshake, when AutoMTLS is on,
//! in their own task, so a slow or hostile client never stalls accepting.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::shutdown::Shutdown;

/// A TLS handshake with our own parent process takes milliseconds.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address as the handshake line states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

impl ListenAddress {
    /// `(network, address)` fields of the handshake line.
    pub fn handshake_fields(&self) -> (&'static str, String) {
        match self {
            ListenAddress::Unix(path) => ("unix", path.display().to_string()),
            ListenAddress::Tcp(address) => ("tcp", address.to_string()),
        }
    }
}

pub(crate) enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `plugin.sock` in `directory`, falling back to 127.0.0.1:0.
    pub async fn bind(directory: Option<&Path>) -> io::Result<(Listener, ListenAddress)> {
        if let Some(directory) = directory {
            let path = directory.join("plugin.sock");
            match UnixListener::bind(&path) {
                Ok(listener) => return Ok((Listener::Unix(listener), ListenAddress::Unix(path))),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen on a unix socket; falling back to TCP");
                }
            }
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        Ok((Listener::Tcp(listener), ListenAddress::Tcp(address)))
    }

    async fn accept(&self) -> io::Result<Transport> {
        match self {
            Listener::Unix(listener) => listener.accept().await.map(|(stream, _)| Transport::Unix(stream)),
            Listener::Tcp(listener) => listener.accept().await.map(|(stream, _)| {
                // gRPC is many small frames; do not batch them.
                let _ = stream.set_nodelay(true);
                Transport::Tcp(stream)
            }),
        }
    }

    /// Accepts until shutdown, yielding ready (TLS-established) connections.
    pub fn incoming(
        self,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: Shutdown,
    ) -> ReceiverStream<io::Result<Connection>> {
        let (sender, receiver) = mpsc::channel(16);
        let acceptor = tls.map(TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let transport = tokio::select! {
                    () = shutdown.wait() => break,
                    accepted = self.accept() => accepted,
                };
                let transport = match transport {
                    Ok(transport) => transport,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let sender = sender.clone();
                match &acceptor {
                    None => {
                        if sender.send(Ok(Connection::Plain(transport))).await.is_err() {
                            break;
                        }
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let handshake =
                                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(transport)).await;
                            match handshake {
                                Ok(Ok(stream)) => {
                                    let _ = sender.send(Ok(Connection::Tls(Box::new(stream)))).await;
                                }
                                Ok(Err(error)) => tracing::warn!(%error, "TLS handshake failed"),
                                Err(_) => tracing::warn!("TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        });
        ReceiverStream::new(receiver)
    }
}

/// A raw accepted stream.
#[derive(Debug)]
pub(crate) enum Transport {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// A connection ready for gRPC.
#[derive(Debug)]
pub(crate) enum Connection {
    Plain(Transport),
    Tls(Box<TlsStream<Transport>>),
}

// Every inner stream is `Unpin`, so delegating through `Pin::new` needs no
// pin projection (and no unsafe code).
macro_rules! delegate_io {
    ($type:ty, $($variant:path),+) => {
        impl AsyncRead for $type {
            fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($variant(inner) => Pin::new(inner).poll_read(context, buffer),)+ }
            }
        }
        impl AsyncWrite for $type {
            fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($variant(inner) => Pin::new(inner).poll_write(context, data),)+ }
            }
            fn poll_write_vectored(self: Pin<&mut Self>, context: &mut Context<'_>, buffers: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($variant(inner) => Pin::new(inner).poll_write_vectored(context, buffers),)+ }
            }
            fn is_write_vectored(&self) -> bool {
                match self { $($variant(inner) => inner.is_write_vectored(),)+ }
            }
            fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($variant(inner) => Pin::new(inner).poll_flush(context),)+ }
            }
            fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($variant(inner) => Pin::new(inner).poll_shutdown(context),)+ }
            }
        }
    };
}

delegate_io!(Transport, Transport::Unix, Transport::Tcp);
delegate_io!(Connection, Connection::Plain, Connection::Tls);

impl Connected for Connection {
    // The peer is always our parent process; nothing to record.
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}
