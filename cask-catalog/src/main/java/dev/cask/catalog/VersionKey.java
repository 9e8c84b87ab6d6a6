package dev.cask.catalog;

/** Names one version: {@code image@number}. */
public record VersionKey(String image, int number) {
    @Override
    public String toString() {
        return image + "@" + number;
    }
}
