//! Test support shared by the integration tests: a scripted LLM server and fake gRPC
//! peers (gateway, executor), all on 127.0.0.1:0.
#![allow(dead_code)]

pub mod llm;
pub mod peers;
