//! Pincer's wire types: the gRPC contracts between the gateway, the bridges, the agents and
//! the executors (package `pincer.v1`), generated from `proto/pincer/v1/*.proto`.
//!
//! | file | boundary |
//! |---|---|
//! | `bridge.proto` | bridge ⇄ gateway bidirectional stream (`BridgeService.OpenStream`) |
//! | `agent.proto` | gateway → agent (`AgentService.RunTurn`, server-streaming) |
//! | `gateway.proto` | agent → gateway (`GatewayService.GetHistory`) |
//! | `executor.proto` | agent → executor typed tool requests (`ExecutorService.Exec`) |
//! | `grant.proto` | the turn grant the gateway issues and the executor checks |
//!
//! This crate holds no behaviour: services convert these types into their own.

/// Package `pincer.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("pincer.v1");
}
