/**
 * Duplication analysis and the space comparisons with other tools: reads images through the
 * formats and the image layer, never the other way round.
 */
module dev.cask.analysis {
    requires transitive dev.cask.volume;
    requires transitive com.fasterxml.jackson.databind;
    requires org.apache.commons.compress;
    requires org.tukaani.xz;
    requires com.github.luben.zstd_jni;

    exports dev.cask.analysis;
}
