//! `filesystem`: a mount.

use super::{AgentFuture, OcfCode, OpOutcome, OpRequest, ResourceAgent};

pub struct FilesystemAgent {
    resource: String,
}

impl FilesystemAgent {
    pub fn new(resource: &str) -> FilesystemAgent {
        FilesystemAgent {
            resource: resource.to_string(),
        }
    }
}

impl ResourceAgent for FilesystemAgent {
    fn name(&self) -> String {
        "filesystem".to_string()
    }

    fn execute(&self, _req: OpRequest) -> AgentFuture<'_> {
        let r = self.resource.clone();
        Box::pin(async move { OpOutcome::fail(OcfCode::ErrUnimplemented, r) })
    }
}
