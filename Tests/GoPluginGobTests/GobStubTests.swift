import GoPluginGob
import Testing

@Test func gobErrorNamesItself() {
  #expect(GobError(code: .malformed, message: "x").description == "gob: x")
}
