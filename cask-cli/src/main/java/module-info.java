/**
 * The cask command: parses, composes the store the user named (local or shared), prints and
 * exits. The only module that prints.
 */
module dev.cask.cli {
    requires transitive dev.cask.server;
    requires transitive dev.cask.s3;
    requires transitive dev.cask.analysis;
    requires info.picocli;
    requires com.fasterxml.jackson.databind;
    requires java.logging;
    requires jdk.unsupported;
    requires com.github.luben.zstd_jni;
    requires org.xerial.sqlitejdbc;
}
