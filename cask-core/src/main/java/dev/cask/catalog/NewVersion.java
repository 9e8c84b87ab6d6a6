package dev.cask.catalog;

/** What a caller supplies to commit a version; the catalog adds number and time. */
public record NewVersion(String message, long size, byte[] content) {}
