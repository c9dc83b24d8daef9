"""Analysis of transcripts: sentiment, keyword and phrase rules, agent-assist events."""
