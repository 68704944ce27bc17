//! The UDP socket under a QUIC endpoint: larger kernel buffers, and GSO batches kept within what
//! the kernel accepts.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncUdpSocket, Runtime, TokioRuntime, UdpPoller};

/// The kernel rejects (EMSGSIZE) a GSO send whose datagrams add up to more than one IP packet can
/// carry (64 KiB less headers); quinn batches up to 10 datagrams whatever their size, so with jumbo
/// or loopback MTUs a batch must be split. The margin covers IPv4 and IPv6 headers.
const MAX_GSO_BYTES: usize = 65_000;

/// Binds a UDP socket on `addr` with kernel buffers of `buffer_bytes` (the kernel may cap them at
/// its `rmem_max` / `wmem_max`) and wraps it for quinn on tokio.
pub(crate) fn bind(addr: SocketAddr, buffer_bytes: usize) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let state = UdpSocketState::new((&socket).into())?;
    // Best effort: small default buffers only cost throughput (drops look like congestion).
    if let Err(e) = state.set_recv_buffer_size((&socket).into(), buffer_bytes) {
        tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    if let Err(e) = state.set_send_buffer_size((&socket).into(), buffer_bytes) {
        tracing::debug!(error = %e, "cannot enlarge the UDP send buffer");
    }
    let inner = TokioRuntime.wrap_udp_socket(socket)?;
    Ok(Arc::new(GsoSplitSocket { inner }))
}

/// Sends oversized GSO batches as several smaller ones.
struct GsoSplitSocket {
    inner: Arc<dyn AsyncUdpSocket>,
}

impl fmt::Debug for GsoSplitSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GsoSplitSocket").field(&self.inner).finish()
    }
}

impl AsyncUdpSocket for GsoSplitSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let segment = match transmit.segment_size {
            Some(s) if transmit.contents.len() > MAX_GSO_BYTES => s,
            _ => return self.inner.try_send(transmit),
        };
        let per_send = (MAX_GSO_BYTES / segment).max(1) * segment;
        // If a later part would block, quinn retries the whole transmit: the parts already sent
        // arrive twice, which QUIC discards as duplicates.
        for part in transmit.contents.chunks(per_send) {
            self.inner.try_send(&Transmit {
                destination: transmit.destination,
                ecn: transmit.ecn,
                contents: part,
                segment_size: (part.len() > segment).then_some(segment),
                src_ip: transmit.src_ip,
            })?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
