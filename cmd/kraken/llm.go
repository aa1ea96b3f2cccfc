package main

import (
	"fmt"
	"log/slog"

	"github.com/kraken-ops/kraken/bot/chat"
	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/openai"
	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/store"
)

// defaultModel is used when a base URL or key is set without a model.
const defaultModel = "gpt-4o-mini"

// llmSettings reads the language model's settings; ok is false when none
// is configured, and the bot answers plain words with a short help.
func llmSettings(getenv func(string) string) (cfg openai.Config, ok bool) {
	cfg = openai.Config{
		APIKey:  getenv("KRAKEN_LLM_API_KEY"),
		BaseURL: getenv("KRAKEN_LLM_BASE_URL"),
		Model:   or(getenv("KRAKEN_LLM_MODEL"), defaultModel),
	}
	return cfg, cfg.APIKey != "" || cfg.BaseURL != ""
}

// attachChat gives the registry its conversation loop over the model.
func attachChat(reg *command.Registry, db *store.DB, cfg openai.Config, deno string, log *slog.Logger, observe func(enclave string, tokens int)) (*chat.Chat, error) {
	cfg.Logger = log
	model, err := openai.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("language model: %w", err)
	}
	c, err := chat.New(chat.Config{
		Model: model, Registry: reg, Store: db, Logger: log, Observe: observe,
		Checker: chat.EngineChecker(engine.CheckOptions{Deno: deno, Logger: log}),
	})
	if err != nil {
		return nil, fmt.Errorf("conversations: %w", err)
	}
	reg.SetChat(c)
	return c, nil
}
