//! Calling any RPC of the descriptor set with a [`DynamicMessage`]: a tonic codec that encodes
//! the request as it is and decodes the response by the RPC's output descriptor, so the gateway
//! needs no generated client per service.

use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The codec of one RPC: requests as they are, responses as its output message.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    output: MessageDescriptor,
}

impl DynamicCodec {
    /// The codec for `rpc`.
    pub fn new(rpc: &MethodDescriptor) -> Self {
        Self {
            output: rpc.output(),
        }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.output.clone())
    }
}

/// Encodes a [`DynamicMessage`] in the protobuf wire format.
#[derive(Debug, Clone, Copy)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|_| Status::internal("the request could not be encoded"))
    }
}

/// Decodes the wire format as one message type.
#[derive(Debug, Clone)]
pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|_| Status::internal("the response could not be decoded"))
    }
}

/// The gRPC path of `rpc`: `/{package.Service}/{Method}`.
pub fn path(rpc: &MethodDescriptor) -> PathAndQuery {
    let path = format!("/{}/{}", rpc.parent_service().full_name(), rpc.name());
    // Descriptor names are identifiers joined by dots: always a valid path.
    PathAndQuery::try_from(path).unwrap_or_else(|_| PathAndQuery::from_static("/"))
}

/// Calls the unary `rpc` on `channel`.
///
/// # Errors
/// The service's status; UNAVAILABLE when the channel cannot be used.
pub async fn unary(
    channel: Channel,
    rpc: &MethodDescriptor,
    request: Request<DynamicMessage>,
) -> Result<Response<DynamicMessage>, Status> {
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|_| Status::unavailable("the service is unreachable"))?;
    client
        .unary(request, path(rpc), DynamicCodec::new(rpc))
        .await
}
