//! Bearer-token check for gRPC ingest, when the server is configured with a token.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

#[derive(Clone)]
pub struct BearerAuth {
    expected: Option<Arc<[u8]>>,
}

impl BearerAuth {
    pub fn new(token: Option<String>) -> BearerAuth {
        BearerAuth {
            expected: token
                .map(|t| Arc::from(format!("Bearer {t}").into_bytes().into_boxed_slice())),
        }
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if constant_time_eq(presented, expected) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing or wrong bearer token"))
        }
    }
}

/// Compares without an early exit, so response timing does not reveal how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(header: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = header {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        request
    }

    #[test]
    fn only_the_configured_token_passes() {
        let mut auth = BearerAuth::new(Some("s3cret".into()));
        assert!(auth.call(request_with(Some("Bearer s3cret"))).is_ok());
        assert!(auth.call(request_with(Some("Bearer s3cres"))).is_err());
        assert!(auth.call(request_with(None)).is_err());
        let mut open = BearerAuth::new(None);
        assert!(open.call(request_with(None)).is_ok());
    }
}
